"""A dataset too large for the GPU's free memory stays in pinned host memory, with one line saying so. The
decision is tested here on the CPU with a faked free-memory figure; tests/train/test_gpu.py checks the GPU side."""

import logging

import torch

from vqtune.data._placement import GIB, fits_on_device, place


def test_a_dataset_may_take_half_of_the_free_gpu_memory():
    assert fits_on_device(2 * GIB, 4 * GIB)
    assert not fits_on_device(2 * GIB + 1, 4 * GIB)
    assert not fits_on_device(1, 0)


def test_too_large_a_dataset_is_pinned_in_host_memory_with_a_notice(monkeypatch, caplog):
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self) or self)
    train, val = torch.zeros(300, 3, 64, 64, dtype=torch.uint8), torch.zeros(50, 3, 64, 64, dtype=torch.uint8)
    with caplog.at_level(logging.WARNING, logger="vqtune.data"):
        placed = place([train, val], torch.device("cuda"), free_bytes=4 * 2**20)  # 4 MiB free, 4.3 MiB of data
    assert [t.device.type for t in placed] == ["cpu", "cpu"] and len(pinned) == 2
    (record,) = caplog.records
    assert "does not fit in half of the GPU's free" in record.getMessage() and "pinned host memory" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_on_the_cpu_the_dataset_stays_as_it_is():
    data = [torch.zeros(4, 3, 8, 8, dtype=torch.uint8)]
    assert place(data, torch.device("cpu"))[0] is data[0]
