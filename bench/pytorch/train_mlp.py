#!/usr/bin/env python3
"""PyTorch reference for bench/trainbench: the same MLPs, data shapes, batch
sizes and optimizer, trained the way kernels.Train does it, printing samples/s.

    python3 bench/pytorch/train_mlp.py --network wide --samples 65536 --epochs 5

"wide" is 256 -> 1024 ReLU -> 1024 ReLU -> 10 (softmax cross-entropy, batch
1024); "seed" is 10 -> 64 ReLU (dropout 0.2) -> 32 ReLU (dropout 0.1) -> 1
sigmoid (MSE, batch 32). Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8.

As in Train, the timing covers normalizing and uploading the data, and each
epoch shuffles on the device, gathers each batch from device-resident data and
reads the summed loss back once. Matmuls run in true fp32 (TF32 off) unless
--tf32 is given, since our kernels are fp32 FMA without tensor cores.
"""
import argparse
import json
import sys
import time

import torch


def seed_data(n, gen):
    x = torch.randn(n, 10, generator=gen)
    z = 0.8 * x[:, 0] - 0.6 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.7 * x[:, 4].abs() - 0.4 * x[:, 6]
    return x, torch.sigmoid(z).unsqueeze(1)


def wide_data(n, gen):
    teacher = torch.randn(256, 10, generator=gen)
    x = torch.randn(n, 256, generator=gen)
    return x, (x @ teacher).argmax(dim=1)


def seed_model():
    return torch.nn.Sequential(
        torch.nn.Linear(10, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1),
        torch.nn.Linear(32, 1), torch.nn.Sigmoid())


def wide_model():
    return torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10))  # logits; cross_entropy applies the softmax


NETWORKS = {
    # name: (data, model, loss, batch, architecture as trainbench prints it)
    "seed": (seed_data, seed_model, torch.nn.functional.mse_loss, 32,
             "10 > 64 relu d0.2 > 32 relu d0.1 > 1 sigmoid"),
    "wide": (wide_data, wide_model, torch.nn.functional.cross_entropy, 1024,
             "256 > 1024 relu > 1024 relu > 10 softmax"),
}


def train(name, samples, epochs, device, warmup):
    data, make_model, loss_fn, batch, arch = NETWORKS[name]
    gen = torch.Generator().manual_seed(1)
    x_host, y_host = data(samples, gen)
    torch.manual_seed(1)
    model = make_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

    def epoch(x, y):
        total = torch.zeros((), device=device)
        order = torch.randperm(samples, device=device)
        for start in range(0, samples, batch):
            idx = order[start:start + batch]
            xb, yb = x[idx], y[idx]
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        return (total / samples).item()  # the one host read per epoch

    def upload():
        x = x_host.to(device)
        x = (x - x.mean(dim=0)) / x.std(dim=0, correction=0).clamp_min(1e-12)
        return x, y_host.to(device)

    if warmup:  # kernel selection, allocator and cuBLAS handle, outside the timing
        x, y = upload()
        epoch(x, y)
        model = make_model().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    x, y = upload()
    losses = [epoch(x, y) for _ in range(epochs)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "backend": "pytorch-" + device.type, "network": name, "architecture": arch,
        "samples": samples, "epochs": epochs, "batch_size": batch, "seconds": seconds,
        "samples_per_sec": samples * epochs / seconds,
        "first_epoch_loss": losses[0], "final_epoch_loss": losses[-1],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default="wide", help="comma-separated: seed, wide")
    p.add_argument("--samples", type=int, default=65536)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tf32", action="store_true", help="allow TF32 tensor-core matmuls")
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    device = torch.device(args.device)
    report = {
        "torch_version": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "tf32": args.tf32, "results": [],
    }
    for name in args.network.split(","):
        r = train(name.strip(), args.samples, args.epochs, device, args.warmup)
        print("%-13s %-5s %-44s %7d samples x %d epochs  %8.2fs  %10.0f samples/s  loss %.4f -> %.4f" % (
            r["backend"], r["network"], r["architecture"], r["samples"], r["epochs"], r["seconds"],
            r["samples_per_sec"], r["first_epoch_loss"], r["final_epoch_loss"]))
        report["results"].append(r)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
