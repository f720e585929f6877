"""Generate ZigZag golden results into tests/goldens (needs the `zigzag` extra).

Usage (ZigZag takes seconds per layer; run it in the background):

    nohup nice -n 15 python scripts/generate_goldens.py > /tmp/goldens.log 2>&1 &
    python scripts/generate_goldens.py --cores edge_tpu_like --sets k_sweep --bits 8

Writes ``tests/goldens/<core>_<set>_<bits>b.json``. Incremental and resumable: a layer already in its file is
skipped, the file is rewritten after every layer, so a kill loses at most the layer in flight. Identical layers
(same shape and precision) are costed once; the file lists every name that shares a result. Only MAC layers are
costed (ZigZag does not cost pooling / element-wise layers on a MAC core).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from exitspace.cost.zigzag_backend import ZigZagBackend, layer_key
from exitspace import hardware
from exitspace.hardware.model import Core
from exitspace.workload.layer import Layer, OpType, Precision

GOLDEN_FORMAT = "exitspace.goldens"
GOLDEN_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "goldens"

# ------------------------------------------------------------------------------------------------ cores


# ZigZag's bundled cores that exitspace has no preset for, each with the mapping file ZigZag pairs it with.
ZIGZAG_BUNDLED: dict[str, tuple[str, str]] = {
    "ascend_like": ("ascend_like.yaml", "ascend_like.yaml"),
    "meta_prototype": ("meta_prototype.yaml", "meta_prototype_like.yaml"),
    "tesla_npu_like": ("tesla_npu_like.yaml", "tesla_npu_like.yaml"),
}


def load_core(name: str) -> tuple[Core, str | None]:
    """A core preset of the hardware stage (``edge_tpu_like``: the paper's core; ``tpu_like``: ZigZag's), or
    ``zigzag:<name>``: one of ZigZag's bundled cores read with its bundled mapping file. Also returns where a
    non-preset core came from (kept in the golden file as ``core_origin``)."""
    if not name.startswith("zigzag:"):
        return hardware.load_core(name), None
    import zigzag

    from exitspace.hardware.zigzag_yaml import load_zigzag_core

    bundled = name.removeprefix("zigzag:")
    if bundled not in ZIGZAG_BUNDLED:
        raise SystemExit(f"--cores: unknown bundled ZigZag core {bundled!r}; known: {sorted(ZIGZAG_BUNDLED)}")
    hw_file, map_file = ZIGZAG_BUNDLED[bundled]
    inputs = Path(zigzag.__file__).parent / "inputs"
    core = load_zigzag_core(inputs / "hardware" / hw_file, mapping=inputs / "mapping" / map_file)
    version = ZigZagBackend(lpf_limit=6).version.split("+")[0]
    return core, f"{version}: zigzag/inputs/hardware/{hw_file} + zigzag/inputs/mapping/{map_file}"


# ------------------------------------------------------------------------------------------------ layer sets


def _conv(name: str, k: int, c: int, o: int, kernel: int = 3, stride: int = 1, ox: int | None = None) -> Layer:
    op = OpType.POINTWISE if kernel == 1 else OpType.CONV
    return Layer(name, op, K=k, C=c, OY=o, OX=o if ox is None else ox, FY=kernel, FX=kernel,
                 stride=(stride, stride), padding=(kernel // 2, kernel // 2))


def k_sweep() -> list[Layer]:
    """3x3 conv, C=32, 16x16 outputs, K = 24..40 (crosses the 8- and 32-wide K unrollings)."""
    return [_conv(f"k{k}", k, 32, 16) for k in range(24, 41)]


def c_sweep() -> list[Layer]:
    """3x3 conv, K=32, 16x16 outputs, C = 24..40."""
    return [_conv(f"c{c}", 32, c, 16) for c in range(24, 41)]


def ox_sweep() -> list[Layer]:
    """3x3 conv, K=C=32, OY=8, OX = 8..24 (crosses the 4-wide OX unrolling)."""
    return [_conv(f"ox{ox}", 32, 32, 8, ox=ox) for ox in range(8, 25)]


def resnet20() -> list[Layer]:
    """ResNet-20 (CIFAR) MAC layers with its exit heads, plus the option-B 1x1 stride-2 shortcut convs."""
    shortcuts = [_conv("optionB_s2_short", 32, 16, 16, kernel=1, stride=2),
                 _conv("optionB_s3_short", 64, 32, 8, kernel=1, stride=2)]
    try:  # the workload stage's builder (option-A shortcuts, paper heads)
        from exitspace.workload.paper import resnet20_workload

        return [layer for layer in resnet20_workload() if layer.op.is_mac] + shortcuts
    except ImportError:
        pass
    layers = [_conv("stem", 16, 3, 32)]
    for stage, (cin, cout, size) in enumerate([(16, 16, 32), (16, 32, 16), (32, 64, 8)], start=1):
        for block in range(3):
            first_in = cin if block == 0 else cout
            stride = 2 if (block == 0 and stage > 1) else 1
            layers.append(_conv(f"s{stage}b{block}c1", cout, first_in, size, stride=stride))
            layers.append(_conv(f"s{stage}b{block}c2", cout, cout, size))
            if block == 0 and stage > 1:
                layers.append(_conv(f"s{stage}b{block}short", cout, cin, size, kernel=1, stride=2))
    layers.append(Layer("fc", OpType.FC, K=10, C=64))
    return layers


# (out channels, out size, stride, depthwise kernel) per block, paper-setup.md section 1
_MBV2_BLOCKS = [(16, 32, 1, 3), (24, 32, 1, 3), (24, 32, 1, 3), (32, 32, 1, 3), (32, 32, 1, 3), (64, 16, 2, 3),
                (64, 16, 1, 3), (96, 16, 1, 7), (96, 16, 1, 7), (160, 8, 2, 7), (160, 8, 1, 7), (320, 8, 1, 7)]
_EXITS = "ABCDEFGHIJ"


def mobilenetv2() -> list[Layer]:
    """The paper's MobileNetV2-CIFAR backbone and every exit head's FC layers (1- and 2-layer heads)."""
    try:
        from exitspace.workload.paper import paper_mobilenetv2_workload

        return [layer for layer in paper_mobilenetv2_workload() if layer.op.is_mac]
    except ImportError:
        pass
    layers = [_conv("stem", 32, 3, 32)]
    cin, size_in = 32, 32
    for index, (cout, size, stride, k) in enumerate(_MBV2_BLOCKS):
        hidden = cin if index == 0 else cin * 6
        if index > 0:
            layers.append(_conv(f"b{index}_expand", hidden, cin, size_in, kernel=1))
        layers.append(Layer(f"b{index}_dw", OpType.DEPTHWISE, K=hidden, C=hidden, groups=hidden, OY=size, OX=size,
                            FY=k, FX=k, stride=(stride, stride), padding=(k // 2, k // 2)))
        layers.append(_conv(f"b{index}_project", cout, hidden, size, kernel=1))
        cin, size_in = cout, size
    head_points = {name: _MBV2_BLOCKS[i][0] for i, name in enumerate(_EXITS)} | {"K": 320}
    for name, channels in head_points.items():
        features = channels * 16
        layers.append(Layer(f"exit{name}_fc1", OpType.FC, K=10, C=features, exit=name))
        layers.append(Layer(f"exit{name}_fc2a", OpType.FC, K=channels * 8, C=features, exit=name))
        layers.append(Layer(f"exit{name}_fc2b", OpType.FC, K=10, C=channels * 8, exit=name))
    return layers


def random_layers(count: int = 40, seed: int = 2026) -> list[Layer]:
    """Seeded random MAC layers (odd sizes, strides, kernels 1-7): a held-out set nobody tuned against."""
    rng = random.Random(seed)
    layers: list[Layer] = []
    while len(layers) < count:
        kind = rng.choice(["conv", "conv", "pw", "dw", "fc"])
        size = rng.randint(1, 32)
        stride = rng.choice([1, 1, 2])
        name = f"r{len(layers)}_{kind}"
        if kind == "fc":
            layers.append(Layer(name, OpType.FC, K=rng.randint(1, 600), C=rng.randint(1, 3000)))
        elif kind == "dw":
            k = rng.choice([3, 5, 7])
            channels = rng.randint(1, 400)
            layers.append(Layer(name, OpType.DEPTHWISE, K=channels, C=channels, groups=channels, OY=size, OX=size,
                                FY=k, FX=k, stride=(stride, stride), padding=(k // 2, k // 2)))
        else:
            k = 1 if kind == "pw" else rng.choice([3, 5, 7])
            ox = max(1, size + rng.randint(-3, 3))
            layers.append(Layer(name, OpType.POINTWISE if k == 1 else OpType.CONV, K=rng.randint(1, 200),
                                C=rng.randint(1, 200), OY=size, OX=ox, FY=k, FX=k, stride=(stride, stride),
                                padding=(k // 2, k // 2)))
    return layers


LAYER_SETS: dict[str, Callable[[], list[Layer]]] = {
    "k_sweep": k_sweep,
    "c_sweep": c_sweep,
    "ox_sweep": ox_sweep,
    "resnet20": resnet20,
    "mobilenetv2": mobilenetv2,
    "random": random_layers,
    "heldout": lambda: random_layers(count=40, seed=7),
    "random22": lambda: random_layers(count=40, seed=22),  # issue 22's held-out set for ZigZag's other cores
    "depthwise": lambda: [layer for layer in random_layers(count=120, seed=23) if layer.op == OpType.DEPTHWISE][:24],
}

# ------------------------------------------------------------------------------------------------ golden files


def golden_path(out: Path, core: str, layer_set: str, bits: int, literal: bool = False) -> Path:
    """``<core>_<set>[_literal]_<bits>b.json``; ``_literal``: depthwise layers mapped with the dataflow as written."""
    return out / f"{core}_{layer_set}{'_literal' if literal else ''}_{bits}b.json"


def _write_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def _new_payload(core: Core, layer_set: str, bits: int, backend: ZigZagBackend, origin: str | None) -> dict[str, Any]:
    extra = {} if origin is None else {"core_origin": origin}
    return {
        **extra,
        "format": GOLDEN_FORMAT,
        "version": GOLDEN_VERSION,
        "set": layer_set,
        "bits": bits,
        "core": core.model_dump(mode="json"),
        "backend_version": backend.version,
        "complete": False,
        "layers": [],
    }


def generate(
    core: Core, layer_set: str, bits: int, out: Path, backend: ZigZagBackend, force: bool, origin: str | None = None
) -> list[float]:
    """Fill one golden file; returns the seconds ZigZag took per newly costed layer."""
    path = golden_path(out, core.name, layer_set, bits, literal=not backend.depthwise_on_g)
    layers = [layer.with_precision(Precision.uniform(bits)) for layer in LAYER_SETS[layer_set]()]
    payload = _new_payload(core, layer_set, bits, backend, origin)
    if path.exists() and not force:
        existing = json.loads(path.read_text())
        if existing.get("core") != payload["core"] or existing.get("backend_version") != backend.version:
            raise SystemExit(f"{path}: made with another core or backend version; rerun with --force to regenerate")
        payload = existing
    done = {layer_key(Layer.from_dict(entry["layer"])): entry for entry in payload["layers"]}
    groups: dict[Any, list[Layer]] = {}
    for layer in layers:
        groups.setdefault(layer_key(layer), []).append(layer)
    seconds: list[float] = []
    for index, (key, members) in enumerate(groups.items(), start=1):
        names = [layer.name for layer in members]
        if key in done:
            done[key]["names"] = names
            continue
        detail = backend.evaluate_detailed([members[0]], core)[0]
        entry = {
            "layer": members[0].to_dict(),
            "names": names,
            "cost": detail.cost.to_dict(),
            "ideal_cycles": detail.ideal_cycles,
            "ideal_temporal_cycles": detail.ideal_temporal_cycles,
            "systolic_drain_cycles": detail.systolic_drain_cycles,
            "spatial_mapping": detail.spatial_mapping,
            "spatial_mapping_int": detail.spatial_mapping_int,
            "temporal_mapping": detail.temporal_mapping,
            "mem_accesses": detail.mem_accesses,
            "mem_energy_by_direction": detail.mem_energy_by_direction,
            "zigzag_version": detail.zigzag_version,
            "seconds": round(detail.seconds, 3),
        }
        payload["layers"].append(entry)
        done[key] = entry
        seconds.append(detail.seconds)
        _write_atomic(path, payload)
        print(
            f"[{time.strftime('%H:%M:%S')}] {path.name}: {index}/{len(groups)} {members[0].name} "
            f"latency={detail.cost.latency_cycles:.0f} energy={detail.cost.energy_pj:.4g} ({detail.seconds:.1f}s)",
            flush=True,
        )
    order = {key: i for i, key in enumerate(groups)}
    payload["layers"] = sorted(
        (entry for entry in payload["layers"] if layer_key(Layer.from_dict(entry["layer"])) in order),
        key=lambda entry: order[layer_key(Layer.from_dict(entry["layer"]))],
    )
    payload["complete"] = True
    _write_atomic(path, payload)
    print(f"[{time.strftime('%H:%M:%S')}] {path.name}: complete ({len(groups)} unique layers)", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", default="edge_tpu_like,tpu_like",
                        help=f"comma-separated core presets, or zigzag:<name> for {sorted(ZIGZAG_BUNDLED)}")
    parser.add_argument("--sets", default=",".join(LAYER_SETS), help=f"comma-separated, of {list(LAYER_SETS)}")
    parser.add_argument("--bits", default="8,4", help="comma-separated bit widths")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="golden directory")
    parser.add_argument("--lpf", type=int, default=6, help="ZigZag LOMA lpf_limit")
    parser.add_argument("--force", action="store_true", help="regenerate files made with another core/backend")
    parser.add_argument("--literal-depthwise", action="store_true",
                        help="map depthwise layers with the dataflow as written (ZigZag's default), not K -> G")
    args = parser.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    for name in sets:
        if name not in LAYER_SETS:
            parser.error(f"--sets: unknown set {name!r}; known: {list(LAYER_SETS)}")
    bits = [int(b) for b in args.bits.split(",") if b]
    cores = [load_core(name) for name in args.cores.split(",") if name]
    backend = ZigZagBackend(lpf_limit=args.lpf, depthwise_on_g=not args.literal_depthwise)
    args.out.mkdir(parents=True, exist_ok=True)
    seconds: list[float] = []
    for layer_set in sets:  # sets outermost: small sweeps finish first on every core
        for width in bits:
            for core in cores:
                seconds += generate(core[0], layer_set, width, args.out, backend, args.force, core[1])
    if seconds:
        print(f"zigzag seconds per layer: median {statistics.median(seconds):.2f}, n={len(seconds)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
