"""The PyTorch side of `deno task bench --pytorch`.

Trains one of the project's networks in PyTorch on exactly the data and
minibatch order that the TypeScript benchmark used, then writes the test
predictions back for the benchmark to score with its own mIoU code. The
networks mirror the builders of exercises/*.ts (listed in tools/networks.ts) layer for layer;
the optimizer is SGD with momentum, the loss is computed from the logits
(BCEWithLogitsLoss, CrossEntropyLoss), batch norm has PyTorch's defaults
(momentum 0.1, eps 1e-5), and the test runs in eval mode.

Usage (the benchmark writes the input folder and reads the output):

    python3 tools/pytorch_reference.py FOLDER

FOLDER holds meta.json, train_images.f32 [n, h, w, 3], train_masks.i32
[n, h, w], test_images.f32 [m, h, w, 3]; this script writes test_pred.i32
[m, oh, ow] (class per pixel) and result.json.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def crb(cin, cout, order, convs=2, kernel=3, padding=1):
    """Conv + ReLU + BN (CRB) or Conv + BN + ReLU (CBR), `convs` times."""
    layers = []
    for index in range(convs):
        layers.append(nn.Conv2d(cin if index == 0 else cout, cout, kernel, padding=padding))
        relu, norm = nn.ReLU(), nn.BatchNorm2d(cout)
        layers += [relu, norm] if order == "CRB" else [norm, relu]
    return nn.Sequential(*layers)


def up(cin, cout, order):
    """Transposed conv (kernel 2, stride 2) + ReLU + BN in the block's order."""
    relu, norm = nn.ReLU(), nn.BatchNorm2d(cout)
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 2, stride=2),
        *([relu, norm] if order == "CRB" else [norm, relu]),
    )


class Small(nn.Module):
    """bin, semaseg, nearest, transposeconv, concat (SPEC.md items 2-9)."""

    def __init__(self, name, classes):
        super().__init__()
        self.name = name
        if name in ("bin", "semaseg"):
            self.body = crb(3, 32, "CRB", convs=6)
        else:
            self.enc1 = crb(3, 32, "CRB")
            self.enc2 = crb(32, 32, "CRB")
            if name == "transposeconv" or name == "concat":
                self.up = up(32, 32, "CRB")
            if name == "concat":
                self.fuse = crb(64, 32, "CRB", convs=1, kernel=1, padding=0)
            self.dec1 = crb(32, 32, "CRB")
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        if self.name in ("bin", "semaseg"):
            return self.head(self.body(x))
        skip = self.enc1(x)
        x = self.enc2(F.max_pool2d(skip, 2))
        if self.name == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            x = self.up(x)
        if self.name == "concat":
            x = self.fuse(torch.cat([x, skip], dim=1))
        return self.head(self.dec1(x))


class UNetLike(nn.Module):
    """UNet with padding same and filters 16-256 (SPEC.md item 11)."""

    def __init__(self, classes, filters=(16, 32, 64, 128, 256)):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = 3
        for f in filters:
            self.enc.append(crb(cin, f, "CBR"))
            cin = f
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        for f in reversed(filters[:-1]):
            self.ups.append(up(cin, f, "CBR"))
            self.dec.append(crb(2 * f, f, "CBR"))
            cin = f
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        skips = []
        for index, block in enumerate(self.enc):
            if index > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for upsample, block, skip in zip(self.ups, self.dec, reversed(skips[:-1])):
            x = block(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)


class SegNet(nn.Module):
    """VGG16-style encoder, index unpooling decoder (SPEC.md item 12)."""

    def __init__(self, classes):
        super().__init__()
        enc_convs, enc_filters = (2, 2, 3, 3, 3), (64, 128, 256, 512, 512)
        dec_convs, dec_filters = (3, 3, 3, 2, 2), (512, 256, 128, 64, 64)
        self.enc = nn.ModuleList()
        cin = 3
        for convs, f in zip(enc_convs, enc_filters):
            self.enc.append(crb(cin, f, "CBR", convs=convs))
            cin = f
        self.dec = nn.ModuleList()
        for convs, f in zip(dec_convs, dec_filters):
            self.dec.append(crb(cin, f, "CBR", convs=convs))
            cin = f
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        indices = []
        for block in self.enc:
            x, index = F.max_pool2d(block(x), 2, return_indices=True)
            indices.append(index)
        for block, index in zip(self.dec, reversed(indices)):
            x = block(F.max_unpool2d(x, index, 2))
        return self.head(x)


def build(name, classes):
    if name == "unetlike":
        return UNetLike(classes)
    if name == "segnet":
        return SegNet(classes)
    return Small(name, classes)


def main(folder):
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    torch.manual_seed(meta["seed"])
    if meta.get("threads"):
        torch.set_num_threads(meta["threads"])
    size, classes = meta["size"], meta["classes"]
    images = np.fromfile(folder / "train_images.f32", dtype="<f4").reshape(-1, size, size, 3)
    masks = np.fromfile(folder / "train_masks.i32", dtype="<i4").reshape(-1, size, size)
    test = np.fromfile(folder / "test_images.f32", dtype="<f4").reshape(-1, size, size, 3)
    images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    masks = torch.from_numpy(masks.astype(np.int64))
    test = torch.from_numpy(test.transpose(0, 3, 1, 2).copy())

    model = build(meta["model"], classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=meta["lr"], momentum=meta["momentum"])
    loss_fn = nn.BCEWithLogitsLoss() if classes == 1 else nn.CrossEntropyLoss()
    model.train()
    losses = []
    warmup = 5
    start = timed = time.perf_counter()
    for iteration, batch in enumerate(meta["batches"], start=1):
        index = torch.tensor(batch)
        x, t = images[index], masks[index]
        optimizer.zero_grad()
        logits = model(x)
        if classes == 1:
            loss = loss_fn(logits[:, 0], t.float())
        else:
            loss = loss_fn(logits, t)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if iteration == warmup:
            timed = time.perf_counter()
        if iteration % 100 == 0:
            print(f"pytorch {meta['model']}: iteration {iteration} loss {losses[-1]:.4f}", flush=True)
    end = time.perf_counter()
    done = len(meta["batches"])

    if meta.get("bn_stats") == "recompute":
        # As lib/batch_norm_stats.ts: the mean of the batch statistics over the
        # training set in chunks of the minibatch size, in the same shuffled
        # order (momentum None is PyTorch's cumulative average).
        batch = len(meta["batches"][0])
        chunks = max(1, len(images) // batch)
        order = torch.tensor(meta["bn_order"])
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        with torch.no_grad():
            for chunk in range(chunks):
                model(images[order[chunk * batch:(chunk + 1) * batch]])

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(test[i:i + 4]) for i in range(0, len(test), 4)])
    if classes == 1:
        prediction = (logits[:, 0] > 0).int()
    else:
        prediction = logits.argmax(dim=1).int()
    prediction.numpy().astype("<i4").tofile(folder / "test_pred.i32")
    (folder / "result.json").write_text(json.dumps({
        "ms_per_iter": (end - timed) * 1000 / max(done - warmup, 1),
        "train_s": end - start,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "losses": losses,
        "out_size": list(prediction.shape[1:]),
        "params": sum(p.numel() for p in model.parameters()),
    }))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tools/pytorch_reference.py FOLDER")
    main(sys.argv[1])
