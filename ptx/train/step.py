"""The pure train step: every updated player takes one optimizer step, in the stage's order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

from ptx.methods.protocol import Method, Metrics, Stage
from ptx.train.state import TrainState

StepFn = Callable[[TrainState, dict[str, Any]], tuple[TrainState, Metrics]]


def make_train_step(method: Method, stage: Stage, txs: Mapping[str, optax.GradientTransformation]) -> StepFn:
    """``step(state, batch) -> (state, metrics)`` for ``stage``.

    Players in ``stage.players`` that have an optimizer in ``txs`` are updated in that order; a later player
    sees the earlier players' updated params and state (alternating GAN updates). Players without one are
    frozen. The RNG is ``fold_in(state.rng, state.step)`` then one fold per player, so a resumed run draws the
    same numbers. Metrics are ``{player}/loss`` and ``{player}/{term}`` scalars, left on the device.
    """
    order = tuple(p for p in stage.players if p in txs)
    missing = sorted(set(txs) - set(stage.players))
    if missing:
        raise ValueError(
            f"stage {stage.name!r}: optimizers given for players {missing} not in {stage.players}"
        )

    def step(state: TrainState, batch: dict[str, Any]) -> tuple[TrainState, Metrics]:
        rng = jax.random.fold_in(state.rng, state.step)
        params, model_state, opt_state = dict(state.params), dict(state.state), dict(state.opt_state)
        metrics: Metrics = {}
        for i, player in enumerate(order):

            def loss_fn(p, player=player, i=i):
                variables = {q: {"params": p if q == player else params[q], **model_state[q]} for q in params}
                return method.loss(stage.name, player, variables, batch, jax.random.fold_in(rng, i))

            (loss, (terms, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params[player])
            deltas, opt_state[player] = txs[player].update(grads, opt_state[player], params[player])
            params[player] = optax.apply_updates(params[player], deltas)
            for q, collections in updates.items():
                model_state[q] = {**model_state[q], **collections}
            metrics[f"{player}/loss"] = loss
            metrics.update({f"{player}/{k}": v for k, v in terms.items()})
        new = state.replace(step=state.step + 1, params=params, state=model_state, opt_state=opt_state)
        return new, metrics

    return step
