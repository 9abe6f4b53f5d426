#!/usr/bin/env python3
"""Times the training step of an MLP in PyTorch eager mode on a GPU, for scripts/gpu_check.sh to
hold dptrain's `bench train` against: the same shape, batch, precision and optimizer step
(Linear + ReLU layers, softmax cross-entropy, SGD with Nesterov momentum and weight decay).

  scripts/bench_pytorch_gpu.py --layers 784,512,512,10 --batch 128 --precision fp32|tf32|bf16
      [--steps 300] [--warmup 30] [--device cuda]

Prints `samples/s N` and `step_us N`. bf16 runs the GEMMs under torch.autocast (bf16 operands,
fp32 accumulation and master weights), as train.precision: bf16 does.
"""
import argparse
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"bench_pytorch_gpu: error: {e} (PyTorch with CUDA is needed)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", required=True, help="widths, e.g. 784,512,512,10")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    try:
        widths = [int(w) for w in a.layers.split(",")]
    except ValueError:
        sys.exit(f"bench_pytorch_gpu: error: --layers '{a.layers}' is not a list of integers")
    if len(widths) < 2 or min(widths) < 1 or a.batch < 1 or a.steps < 1:
        sys.exit("bench_pytorch_gpu: error: --layers needs 2+ positive widths, --batch and --steps >= 1")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_pytorch_gpu: error: torch.cuda.is_available() is False")
    dev = torch.device(a.device)
    tf32 = a.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32

    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    g = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(a.batch, widths[0], generator=g).to(dev)
    y = torch.randint(0, widths[-1], (a.batch,), generator=g).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16,
                            enabled=a.precision == "bf16"):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / a.steps
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"# pytorch {torch.__version__} eager on {name}: {a.layers} batch {a.batch} "
          f"{a.precision}, {a.steps} steps after {a.warmup} warmup")
    print(f"samples/s {a.batch / dt:.1f}")
    print(f"step_us {dt * 1e6:.1f}")


if __name__ == "__main__":
    main()
