"""The GPU path in one call: the GPU tests, trainer throughput against the GPU's bf16 peak, what fractional GPUs
buy, and the prior on CUDA. `make gpu-check`; about 5 minutes on one GPU. Without CUDA it says so and exits 0.

On a GPU machine that has torch but not vqtune's whole install (no pydantic, optuna or Ray, no network):

    here:   make gpu-wheels          # .whl/: pydantic and what it needs, for Python 3.12 on x86-64
    there:  python3 -m pip install --no-index --find-links .whl pydantic
            PYTHONPATH=. python3 benchmarks/gpu_check.py --write BENCHMARKS.md

Only the trainer runs there (``vqtune.train`` needs torch, pydantic, pyyaml, rich, pillow and scikit-image). The
search layer needs Ray, so fractional GPUs are measured as what Ray's ``resources.gpu`` of 1, 0.5 and 0.25 amount
to: 1, 2 and 4 trainer processes sharing the one GPU, each running search-sized trials.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # vqtune from this checkout where it is not installed (a GPU machine)

import records  # noqa: E402

NAME = "gpu-check"

# Dense bf16 tensor throughput from the makers' data sheets (FLOP/s), by a part of the name torch reports.
BF16_PEAK = {
    "H200": 989.4e12,
    "H100 PCIe": 756.0e12,
    "H100": 989.4e12,
    "A100": 312.0e12,
    "L40S": 362.1e12,
    "L4": 121.0e12,
    "A10": 125.0e12,
    "RTX 4090": 165.2e12,
    "RTX 3090": 71.0e12,
}

# (name, data and model settings, batch, epochs) of the throughput runs, all on the bundled photos
SETTINGS = [
    ("CIFAR-scale 32x32", {"data": {"resolution": 32, "crops_per_image": 512}}, 128, 3),
    ("128x128, 32x32 codes", {"data": {"resolution": 128, "crops_per_image": 96}}, 64, 3),
    ("256x256, 64x64 codes", {"data": {"resolution": 256, "crops_per_image": 24}}, 32, 3),
    ("256x256, two levels: 64x64 + 32x32 codes", {"data": {"resolution": 256, "crops_per_image": 24},
                                                   "model": {"levels": 2}}, 32, 3),
]
# A search-sized trial (search_spaces/quick.yaml's base) for the fractional-GPU runs
TRIAL = {"data": {"resolution": 32, "crops_per_image": 48},
         "model": {"hidden": 32, "residual_hidden": 16, "residual_blocks": 1, "embedding_dim": 16},
         "quantizer": {"dead_code_steps": 20}, "optim": {"batch_size": 32, "epochs": 5}}
TRIALS_PER_PROCESS = 3


def peak_of(gpu: str) -> tuple[str | None, float | None]:
    for part, flops in BF16_PEAK.items():
        if part in gpu:
            return part, flops
    return None, None


def train_flops_per_image(config) -> float:
    """Multiply-adds x 2 of one image's forward pass, counted from the layers (convolutions and the quantizer's
    distance product), x 3 for forward and backward."""
    from vqtune.train import build_model

    model = build_model(config, in_channels=3).eval()
    flops = [0.0]

    def conv(module, inputs, output):
        c_in, (kh, kw) = module.in_channels // module.groups, module.kernel_size
        positions = output.shape[-2] * output.shape[-1] if isinstance(module, torch.nn.Conv2d) else (
            inputs[0].shape[-2] * inputs[0].shape[-1])
        flops[0] += 2 * c_in * module.out_channels * kh * kw * positions

    def quantizer(module, inputs, output):
        _, d, h, w = inputs[0].shape
        flops[0] += 2 * h * w * d * module.codebook_size

    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            module.register_forward_hook(conv)
    for level in model.quantizers:  # one, or the top and the bottom of a two-level model
        level.register_forward_hook(quantizer)
    height, width = config.data.size
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    return 3 * flops[0]


def config_of(settings: dict, run_dir: Path, **top):
    from vqtune.config import TrainConfig

    return TrainConfig.model_validate({**settings, "device": "cuda", "run_dir": str(run_dir), **top})


def gpu_tests() -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/train/test_gpu.py"],
                          cwd=ROOT, capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-300:]
    records.log(done.stdout[-3000:])
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error|skipped)", tail)}
    return {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0) + counts.get("error", 0),
            "summary": tail, "seconds": round(time.perf_counter() - started, 1)}


def throughput(root: Path, peak: float | None) -> list[dict]:
    from vqtune.train import fit

    rows = []
    for name, settings, batch, epochs in SETTINGS:
        config = config_of({**settings, "optim": {"batch_size": batch, "epochs": epochs}}, root / name.split()[0])
        collector = records.Collector()
        fit(config, collector)
        rates = [e["train_images_per_s"] for e in collector.epochs[1:]]  # the first epoch warms up
        flops = train_flops_per_image(config)
        images_per_s = float(sum(rates) / len(rates))
        rows.append({"setting": name, "batch": batch, "images": collector.info.steps_per_epoch * batch,
                     "images_per_s": images_per_s, "gflop_per_image": flops / 1e9,
                     "peak_share": None if peak is None else images_per_s * flops / peak,
                     "val_images_per_s": collector.epochs[-1]["val_images_per_s"],
                     "val_recon_mse": collector.epochs[-1]["val_recon_mse"]})
        records.log(f"{name}: {images_per_s:,.0f} images/s")
    return rows


def trial_worker(spec: str) -> None:
    """One process of the fractional-GPU run: warm up, then time TRIALS_PER_PROCESS search-sized trials."""
    from vqtune.train import fit

    root = Path(spec)
    fit(config_of({**TRIAL, "optim": {**TRIAL["optim"], "epochs": 1}}, root / "warm-up"))
    started = time.perf_counter()
    for i in range(TRIALS_PER_PROCESS):
        fit(config_of(TRIAL, root / f"trial-{i}", seed=i))
    print(json.dumps({"seconds": time.perf_counter() - started}))


def fractional(root: Path) -> list[dict]:
    rows = []
    for processes in (1, 2, 4):
        workers = [subprocess.Popen([sys.executable, __file__, "--trial-worker", str(root / f"share-{processes}-{i}")],
                                    stdout=subprocess.PIPE, text=True) for i in range(processes)]
        seconds = [json.loads(w.communicate()[0].strip().splitlines()[-1])["seconds"] for w in workers]
        per_hour = sum(TRIALS_PER_PROCESS * 3600 / s for s in seconds)
        rows.append({"processes": processes, "gpu_per_trial": 1 / processes, "trials_per_hour": per_hour,
                     "seconds_per_trial": sum(seconds) / len(seconds) / TRIALS_PER_PROCESS})
        records.log(f"{processes} trials sharing the GPU: {per_hour:,.0f} trials/hour")
    return rows


def prior(root: Path, levels: int = 1) -> dict:
    """The prior trained on CUDA and 64 samples drawn and decoded: on 8x8 codes of 32x32 crops, or with
    ``levels=2`` the two priors of a two-level model of 256x256 images (32x32 top and 64x64 bottom codes)."""
    from vqtune.train import fit, sample_images

    if levels == 2:
        config = config_of({"data": {"resolution": 256, "crops_per_image": 16}, "model": {"levels": 2},
                            "prior": {"channels": 64, "layers": 8, "epochs": 2, "batch_size": 32}},
                           root / "prior-two-levels", optim={"epochs": 1, "batch_size": 32})
    else:
        config = config_of({"data": {"resolution": 32, "crops_per_image": 256},
                            "prior": {"channels": 64, "layers": 8, "epochs": 3, "batch_size": 64}}, root / "prior",
                           optim={"epochs": 2, "batch_size": 128})
    collector = records.Collector()
    result = fit(config, collector)
    latents = [e["latents_per_s"] for e in collector.epochs if "latents_per_s" in e][1:]
    started = time.perf_counter()
    sample_images(result.run_dir, n=64, device=config.device)  # returns a picture: the work is done
    grid = " + ".join(f"{h}x{w}" for h, w in config.grids)
    return {"latents_per_s": sum(latents) / len(latents), "sample_64_seconds": time.perf_counter() - started,
            "grid": grid, "val_bits_per_dim": result.final["val_bits_per_dim"]}


def render(recs: dict[str, dict]) -> list[str]:
    lines = ["### The GPU path (`make gpu-check`)", ""]
    for record in recs.values():
        tests = record["gpu_tests"]
        lines += [f"GPU tests (`tests/train/test_gpu.py`): {tests['passed']} passed, {tests['failed']} failed.", ""]
        peak = record["peak"]
        lines += records.table(
            ["setting", "batch", "images/s (train)", "GFLOP/image (train)", f"share of bf16 peak ({peak['name']})",
             "images/s (eval)"],
            [[r["setting"], r["batch"], f"{r['images_per_s']:,.0f}", f"{r['gflop_per_image']:.2f}",
              "-" if r["peak_share"] is None else f"{r['peak_share']:.2%}", f"{r['val_images_per_s']:,.0f}"]
             for r in record["throughput"]])
        lines += [""] + records.table(
            ["trials sharing the GPU", "GPU per trial", "trials/hour", "seconds per trial"],
            [[r["processes"], f"{r['gpu_per_trial']:g}", f"{r['trials_per_hour']:,.0f}", f"{r['seconds_per_trial']:.1f}"]
             for r in record["fractional"]])
        for p in (record["prior"], record.get("prior_two_levels")):
            if p:
                lines += ["", f"Prior on CUDA: {p['latents_per_s']:,.0f} latents/s training on {p['grid']} code "
                              f"grids; 64 samples drawn and decoded in {p['sample_64_seconds']:.2f} s."]
        lines += [""]
        peak_line = (f"bf16 peak {peak['flops'] / 1e12:,.1f} TFLOP/s (data sheet, dense) for {peak['name']}"
                     if peak["flops"] else "no bf16 peak known for this GPU")
        lines += records.setting_lines(record, f"GPU driver {record['driver']}; {peak_line}.",
                                       "Fractional GPUs: 1, 2 and 4 trainer processes sharing the GPU, each running "
                                       f"{TRIALS_PER_PROCESS} trials of search_spaces/quick.yaml's base after a "
                                       "warm-up (what Ray's resources.gpu of 1, 0.5 and 0.25 amount to).")
    return lines


def driver_version() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main() -> None:
    if "--trial-worker" in sys.argv:
        trial_worker(sys.argv[sys.argv.index("--trial-worker") + 1])
        return
    renders = {NAME: render}
    args = records.parse(records.parser(__doc__), renders)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device visible; nothing measured, nothing written")
        return
    meter = records.LoadMeter()
    gpu = torch.cuda.get_device_name()
    name, flops = peak_of(gpu)
    records.log(f"{gpu}: bf16 peak {'unknown' if flops is None else f'{flops / 1e12:,.1f} TFLOP/s ({name})'}")
    with tempfile.TemporaryDirectory(prefix="vqtune-gpu-check-") as tmp:
        root = Path(tmp)
        figures = {"gpu_tests": gpu_tests(), "peak": {"name": name or gpu, "flops": flops},
                   "driver": driver_version(), "throughput": throughput(root, flops),
                   "fractional": fractional(root), "prior": prior(root),
                   "prior_two_levels": prior(root, levels=2)}
    record = records.new_record(NAME, "cuda", meter, **figures)
    records.finish(args, record, renders)
    if figures["gpu_tests"]["failed"]:
        sys.exit(f"gpu-check: {figures['gpu_tests']['summary']}")


if __name__ == "__main__":
    main()
