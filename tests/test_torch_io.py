"""ptx.io.torch_pickle: torch-free .pth reader (zip and legacy formats) against torch and a checked-in file."""

import pathlib

import numpy as np
import pytest

from ptx.io import torch_pickle

DATA = pathlib.Path(__file__).parent / "data"


def _expected() -> dict[str, np.ndarray]:
    # What tests/data/torch_io_tiny_*.pt hold (written once with torch.save from these formulas).
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 8
    return {
        "conv.weight": w,
        "conv.weight_t": w.transpose(1, 0, 2, 3),  # a non-contiguous view sharing w's storage
        "norm.bias": np.arange(6, dtype=np.float16) / 4,
        "count": np.arange(5, dtype=np.int64) - 2,
        "scalar": np.array(2.5, np.float32),
    }


@pytest.mark.parametrize("name", ["torch_io_tiny_zip.pt", "torch_io_tiny_legacy.pt"])
def test_torch_free_reader_on_checked_in_files(name):
    sd = torch_pickle.load_state_dict(
        DATA / name, use_torch=False
    )  # also unwraps {"state_dict": ...}, strips module.
    want = _expected()
    assert sorted(sd) == sorted(want)
    for k, v in want.items():
        assert sd[k].dtype == v.dtype and sd[k].shape == v.shape, k
        np.testing.assert_array_equal(sd[k], v, err_msg=k)


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_free_reader_matches_torch(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 5, generator=g)
    sd = {
        "a.weight": base,
        "a.view": base[1:4, 2:],  # storage offset + strides
        "a.t": base.t(),
        "half": torch.randn(3, 2, generator=g).half(),
        "bf16": torch.randn(4, generator=g).bfloat16(),
        "long": torch.arange(7),
        "int": torch.arange(3, dtype=torch.int32),
        "flag": torch.tensor([True, False]),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "sd.pth"
    torch.save(
        {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 2},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    free = torch_pickle.load_state_dict(path, use_torch=False)
    ref = torch_pickle.load_state_dict(path, use_torch=True)
    assert sorted(free) == sorted(ref) == sorted(sd)
    for k in sd:
        assert free[k].dtype == ref[k].dtype and free[k].shape == ref[k].shape, k
        np.testing.assert_array_equal(free[k], ref[k], err_msg=k)


def test_refuses_foreign_globals(tmp_path):
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="print, which a state dict never needs"):
        torch_pickle.read_torch_file(path)


def test_unwrap_errors_and_prefixes():
    arr = np.zeros(2)
    assert torch_pickle.unwrap_state_dict({"module.a": arr, "b": arr}).keys() == {"a", "b"}
    assert torch_pickle.unwrap_state_dict({"net_G": {"x": arr}, "opt": {"lr": 1}})["x"] is not None
    with pytest.raises(ValueError, match="cannot find the state dict"):
        torch_pickle.unwrap_state_dict({"g": {"x": arr}, "d": {"y": arr}}, "f.pth")
    with pytest.raises(FileNotFoundError):
        torch_pickle.load_state_dict("/nonexistent/latest_net_G.pth")


def test_former_location_is_an_alias():
    from ptx.convert import torch_io

    assert torch_io.load_state_dict is torch_pickle.load_state_dict
    assert torch_io.unwrap_state_dict is torch_pickle.unwrap_state_dict


# ----------------------------------------------------------------------------------------------- hostile files


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def _int(v: int) -> bytes:
    return b"J" + int(v).to_bytes(4, "little", signed=True)


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _crafted_pickle(numel: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    """A state dict pickle {"weight": tensor(storage "0" of ``numel`` floats, size, stride)}, opcode by opcode
    (no torch needed to write it)."""
    ordered_dict = b"ccollections\nOrderedDict\n)R"
    storage = _tuple(
        _unicode("storage"), b"ctorch\nFloatStorage\n", _unicode("0"), _unicode("cpu"), _int(numel)
    )
    tensor = (
        b"ctorch._utils\n_rebuild_tensor_v2\n"
        + _tuple(
            storage + b"Q",
            _int(0),
            _tuple(*map(_int, size)),
            _tuple(*map(_int, stride)),
            b"\x89",
            ordered_dict,
        )
        + b"R"
    )
    return b"\x80\x02" + ordered_dict + b"(" + _unicode("weight") + tensor + b"u."


def _crafted_zip(path, pickle_bytes: bytes, storage: bytes, compress: bool = False):
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle_bytes)
        zf.writestr("archive/data/0", storage)
    return path


def test_crafted_file_is_read_correctly_when_honest(tmp_path):
    path = _crafted_zip(
        tmp_path / "ok.pth", _crafted_pickle(4, (2, 2), (2, 1)), np.arange(4, dtype="<f4").tobytes()
    )
    sd = torch_pickle.load_state_dict(path, use_torch=False)
    np.testing.assert_array_equal(sd["weight"], [[0, 1], [2, 3]])
    assert torch_pickle.inspect(path) == {"weight": ((2, 2), np.dtype(np.float32))}


@pytest.mark.parametrize("use_torch", [False, True])
def test_tensor_reaching_past_its_storage_is_refused(tmp_path, use_torch):
    """A 1 KB file whose tensor claims 4M floats over a 16-byte storage: refused, never read past the buffer."""
    if use_torch:
        pytest.importorskip("torch")
    path = _crafted_zip(tmp_path / "evil.pth", _crafted_pickle(4, (2048, 2048), (2048, 1)), b"\0" * 16)
    assert path.stat().st_size < 1024
    with pytest.raises(Exception, match="reads element 4194303 of a storage holding 4"):
        torch_pickle.load_state_dict(path, use_torch=use_torch)


def test_storage_smaller_than_declared_is_refused(tmp_path):
    path = _crafted_zip(tmp_path / "short.pth", _crafted_pickle(4, (4,), (1,)), b"\0" * 8)
    with pytest.raises(ValueError, match="declares 4 x float32 .16 bytes. but archive/data/0 holds 8 bytes"):
        torch_pickle.load_state_dict(path, use_torch=False)


@pytest.mark.parametrize("use_torch", [False, True])
def test_zip_bomb_is_refused_before_inflating(tmp_path, use_torch):
    """A small zip whose storage inflates to 64 MiB, against a 1 MiB budget: refused from the archive's index."""
    if use_torch:
        pytest.importorskip("torch")
    n = 16 << 20
    path = _crafted_zip(tmp_path / "bomb.pth", _crafted_pickle(n, (n,), (1,)), b"\0" * (4 * n), compress=True)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match="64.0 MiB, over the 1.0 MiB budget"):
        torch_pickle.load_state_dict(path, use_torch=use_torch, max_bytes=1 << 20)
    assert torch_pickle.inspect(path)["weight"][0] == (n,)  # the index alone is cheap to read


def test_converter_refuses_a_zip_bomb_with_wrong_names_before_reading_it(tmp_path):
    """A ~1 MB archive whose one storage inflates to 1 GiB, named nothing GFLA has: ``python -m ptx.convert``
    fails from the archive's index (one line, exit 2) with its peak memory far below the inflated size."""
    import subprocess
    import sys
    import zipfile

    n = 1 << 28  # floats: 1 GiB
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", _crafted_pickle(n, (n,), (1,)))
        with zf.open("archive/data/0", "w", force_zip64=True) as f:
            chunk = b"\0" * (16 << 20)
            for _ in range((4 * n) // len(chunk)):
                f.write(chunk)
    assert path.stat().st_size < 8 << 20
    # Peak memory of the child's own image: VmHWM (getrusage's maxrss would include the forked pytest worker's).
    code = (
        "import re\n"
        "from ptx.convert import gfla\n"
        f"rc = gfla.cli(['--generator', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(rc, hwm // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    rc, peak_mib = (int(v) for v in out.stdout.split()[-2:])
    assert rc == 2, out.stderr[-2000:]
    assert "weight" in out.stderr and "Traceback" not in out.stderr
    assert peak_mib < 700, f"peak RSS {peak_mib} MiB for a 1 GiB bomb"
