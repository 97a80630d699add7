"""The pure train step: one generator pass, then every updated player takes one optimizer step, in order.

As the originals do, the generator runs once per step (``Method.forward``). Its outputs are handed to every
player's loss: a critic treats them as constants; the generator's loss is differentiated with respect to them
and the result is pulled back through that same pass (``jax.vjp``), so the generator's parameters get exactly
the gradient of ``loss(forward(params))`` without a second forward. Frozen pretrained networks arrive as the
step's second argument (replicated, never donated, never part of the checkpointed state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

from ptx.methods.protocol import Frozen, Method, Metrics, Stage
from ptx.train.state import TrainState

StepFn = Callable[[TrainState, Frozen, dict[str, Any]], tuple[TrainState, Metrics]]


def _merge(model_state: dict[str, Any], updates: Mapping[str, Mapping[str, Any]]) -> None:
    """Apply ``{player: {collection: tree}}`` state updates in place (players absent from the state are ignored:
    a frozen player's batch statistics, e.g., may be reported by a method that does not know it is frozen)."""
    for player, collections in updates.items():
        if player in model_state:
            model_state[player] = {**model_state[player], **collections}


def make_train_step(method: Method, stage: Stage, txs: Mapping[str, optax.GradientTransformation]) -> StepFn:
    """``step(state, frozen, batch) -> (state, metrics)`` for ``stage``.

    Players in ``stage.players`` that have an optimizer in ``txs`` are updated in that order; a later player
    sees the earlier players' updated params and state (alternating GAN updates). Players without one are
    frozen. The generator (``method.generator``) runs once, before any update, with the step's starting params.
    The RNG is ``fold_in(state.rng, state.step)``, then one fold for the forward pass and one per player, so a
    resumed run draws the same numbers. Metrics are ``{player}/loss`` and ``{player}/{term}`` scalars, left on
    the device.
    """
    order = tuple(p for p in stage.players if p in txs)
    missing = sorted(set(txs) - set(stage.players))
    if missing:
        raise ValueError(
            f"stage {stage.name!r}: optimizers given for players {missing} not in {stage.players}"
        )
    gen = method.generator

    def step(state: TrainState, frozen: Frozen, batch: dict[str, Any]) -> tuple[TrainState, Metrics]:
        rng = jax.random.fold_in(state.rng, state.step)
        params, model_state, opt_state = dict(state.params), dict(state.state), dict(state.opt_state)

        def variables(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
            overrides = overrides or {}
            return {q: {"params": overrides.get(q, params[q]), **model_state[q]} for q in params}

        def forward(gen_params):
            return method.forward(stage.name, variables({gen: gen_params}), frozen, batch, rng_forward)

        rng_forward = jax.random.fold_in(rng, len(order))
        if gen in txs:
            outputs, pullback, forward_updates = jax.vjp(forward, params[gen], has_aux=True)
        else:
            outputs, forward_updates = forward(params[gen])
            pullback = None
        _merge(model_state, forward_updates)
        constants = jax.lax.stop_gradient(outputs)

        metrics: Metrics = {}
        for i, player in enumerate(order):
            key = jax.random.fold_in(rng, i)
            if player == gen:

                def gen_loss(outs, key=key):
                    return method.loss(stage.name, gen, variables(), frozen, batch, outs, key)

                (loss, (terms, updates)), d_outputs = jax.value_and_grad(gen_loss, has_aux=True)(outputs)
                (grads,) = pullback(d_outputs)
            else:

                def player_loss(p, player=player, key=key):
                    vs = variables({player: p})
                    return method.loss(stage.name, player, vs, frozen, batch, constants, key)

                (loss, (terms, updates)), grads = jax.value_and_grad(player_loss, has_aux=True)(
                    params[player]
                )
            deltas, opt_state[player] = txs[player].update(grads, opt_state[player], params[player])
            params[player] = optax.apply_updates(params[player], deltas)
            _merge(model_state, updates)
            metrics[f"{player}/loss"] = loss
            metrics.update({f"{player}/{k}": v for k, v in terms.items()})
        new = state.replace(step=state.step + 1, params=params, state=model_state, opt_state=opt_state)
        return new, metrics

    return step
