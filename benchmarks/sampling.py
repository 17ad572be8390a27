"""Prior sampling: the cached sampler (``GatedPixelCNN.sample``'s default) against the reference sampler.

A Gated PixelCNN at the ``PriorConfig`` defaults with K at the ``ModelConfig`` default (random weights: a draw's
time depends on the shapes, not on the values) draws 64 code grids with each method from the same generator
seed, and the codes are compared. 8x8, 16x16 and 32x32 are drawn in full by both. At 64x64 the reference would
take hours: both draw the first rows of the grid only, which is exactly their work on those rows of the full
grid (the reference's later rows cost more, each evaluating every row above; so the ratio there is a lower
bound), and the fast sampler also draws the whole grid. On the CPU the fast sampler is also timed with one torch
thread: its steps are small enough that a second thread mostly waits, the more so on a busy machine.

    python benchmarks/sampling.py                        # measure (about 12 minutes on 2 quiet cores)
    python benchmarks/sampling.py --quick                # a minute or two: 8x8, 16x16 and the first row of 64x64
    python benchmarks/sampling.py --write BENCHMARKS.md  # also update its section there
"""

from __future__ import annotations

import contextlib
import time

import torch

import records
from vqtune.config import ModelConfig, PriorConfig
from vqtune.models import GatedPixelCNN
from vqtune.train import resolve_device

SECTION = "prior_sampling"
SAMPLES = 64
SEED = 0
TARGET = (32, 10.0)  # grid side, the speed-up the fast sampler must reach there
FULL_GRIDS = (8, 16, 32)
WIDE = 64  # the grid drawn on its first rows only by the reference
FIRST_ROWS = 4


def draw(model: GatedPixelCNN, shape: tuple[int, int, int], method: str) -> tuple[float, torch.Tensor]:
    """Seconds of one ``sample`` call from a generator seeded ``SEED``, and the codes it drew."""
    device = model.embedding.weight.device
    generator = torch.Generator(device).manual_seed(SEED)
    synchronize(device)
    t0 = time.perf_counter()
    codes = model.sample(shape, generator=generator, method=method)
    synchronize(device)
    return time.perf_counter() - t0, codes


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` torch threads (None: as they are)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure(model: GatedPixelCNN, height: int, width: int, methods: dict[str, int], one_thread: bool) -> dict:
    """Time each method ``methods[method]`` times on a (SAMPLES, height, width) draw and compare their codes."""
    shape = (SAMPLES, height, width)
    result = {"grid": f"{width}x{width}", "rows": height, "positions": height * width}
    codes = {}
    runs = [(m, m, None) for m in methods] + ([("fast_1_thread", "fast", 1)] if one_thread else [])
    for name, method, threads in runs:
        repeats = methods[method]
        records.log(f"{width}x{width}, {height} rows: {name}, {repeats} repeats")
        with torch_threads(threads):
            timings = [draw(model, shape, method) for _ in range(repeats)]
        stats = records.summarize([t for t, _ in timings])
        records.warn_if_noisy(f"{width}x{width} {name}", stats)
        codes[name] = timings[0][1]
        result[f"{name}_seconds"] = stats
        result[f"{name}_ms_per_position"] = 1000 * stats["median"] / (height * width)
        records.log(f"  {stats['median']:.2f} s, {result[f'{name}_ms_per_position']:.2f} ms per position")
    if "reference" in codes:
        result["speedup"] = result["reference_seconds"]["median"] / result["fast_seconds"]["median"]
        result["positions_differing"] = int((codes["reference"] != codes["fast"]).any(0).sum())
        records.log(f"  speed-up {result['speedup']:.1f}x; positions differing {result['positions_differing']}")
    return result


def render(recs: dict[str, dict]) -> list[str]:
    rows = [recs[d] for d in ("cpu", "cuda") if d in recs]
    def one(g: dict, name: str) -> str:
        return records.fmt(g[f"{name}_seconds"], ",.2f") if f"{name}_seconds" in g else ""

    def per(g: dict, name: str) -> str:
        return f"{g[f'{name}_ms_per_position']:,.2f}" if f"{name}_ms_per_position" in g else ""

    lines = records.table(
        ["device", "code grid", "rows drawn", "reference, s, median [min-max]", "fast, s, median [min-max]",
         "reference, ms per position", "fast, ms per position", "speed-up (medians)", "same codes",
         "fast with 1 thread, s", "speed-up with 1 thread"],
        [[records.device_name(r), g["grid"], "all" if g["rows"] == int(g["grid"].split("x")[0]) else
          f"first {g['rows']}", one(g, "reference"), one(g, "fast"), per(g, "reference"), per(g, "fast"),
          f"{g['speedup']:,.1f}x" if "speedup" in g else "not timed",
          ("yes" if g["positions_differing"] == 0 else f"**no** ({g['positions_differing']} positions differ)")
          if "positions_differing" in g else "",
          one(g, "fast_1_thread"),
          f"{g['reference_seconds']['median'] / g['fast_1_thread_seconds']['median']:,.1f}x"
          if "reference_seconds" in g and "fast_1_thread_seconds" in g else ""]
         for r in rows for g in r["grids"]])
    for r in rows:
        target = next((g for g in r["grids"] if g["grid"] == f"{TARGET[0]}x{TARGET[0]}" and "speedup" in g), None)
        verdict = (f"Target: the fast sampler at least {TARGET[1]:.0f}x faster than the reference at "
                   f"{TARGET[0]}x{TARGET[0]}, {SAMPLES} samples: {target['speedup']:,.1f}x, "
                   f"{records.verdict(target['speedup'] >= TARGET[1])}." if target else
                   f"Target ({TARGET[0]}x{TARGET[0]}): not measured in this run.")
        lines += ["", *records.setting_lines(
            r, f"Setting: {SAMPLES} samples per draw, a prior at the `PriorConfig` defaults with K at the "
               f"`ModelConfig` default: {r['setting']}; {r['parameters']:,} parameters; generator seed {SEED} "
               f"for both methods; repeats {r['repeats']} (the reference at {r['slow']}: {r['slow_repeats']}).",
            verdict)]
    return lines


def main() -> None:
    parser = records.parser(__doc__, repeats=3, device=True)
    parser.add_argument("--slow-repeats", type=int, default=1,
                        help="repeats of the draws that take minutes: the reference at 32x32 and on the first "
                             "rows of 64x64, the fast sampler on the whole 64x64 grid (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="8x8 and 16x16, and the first row of 64x64 (fast and reference), no whole 64x64")
    args = records.parse(parser, {SECTION: render})
    if args.repeats < 1 or args.slow_repeats < 1:
        parser.error("--repeats and --slow-repeats must be at least 1")

    meter = records.LoadMeter()
    device = resolve_device(args.device)
    prior, k = PriorConfig(), ModelConfig().codebook_size
    torch.manual_seed(SEED)
    model = GatedPixelCNN(k, channels=prior.channels, layers=prior.layers, kernel=prior.kernel,
                          dropout=prior.dropout).to(device).eval()
    for method in ("reference", "fast"):  # warm-up: every kind of step once
        draw(model, (SAMPLES, 2, 4), method)
    one_thread = device.type == "cpu"
    full = FULL_GRIDS[:2] if args.quick else FULL_GRIDS
    slow = f"{full[-1]}x{full[-1]}" + ("" if args.quick else f" and the first rows of {WIDE}x{WIDE}")
    grids = []
    for side in full:
        repeats = args.slow_repeats if side >= TARGET[0] else args.repeats
        grids.append(measure(model, side, side, {"reference": repeats, "fast": args.repeats}, one_thread))
    first_rows = 1 if args.quick else FIRST_ROWS
    grids.append(measure(model, first_rows, WIDE, {"reference": args.slow_repeats, "fast": args.repeats}, one_thread))
    if not args.quick:
        grids.append(measure(model, WIDE, WIDE, {"fast": args.slow_repeats}, one_thread))
    record = records.new_record(
        SECTION, device.type, meter, setting=f"channels {prior.channels}, {prior.layers} layers, kernel "
        f"{prior.kernel}, K {k}", parameters=sum(p.numel() for p in model.parameters()), repeats=args.repeats,
        slow_repeats=args.slow_repeats, slow=slow, grids=grids)
    records.finish(args, record, {SECTION: render})


if __name__ == "__main__":
    main()
