"""Named training recipes; any flag given on the command line overrides the preset's value.

quick  a CPU smoke-to-useful run: one pass over part of CIFAR-10 on a 2-core host in
       under 15 minutes end to end (train + evaluate + calibrate).
full   the real recipe, meant for a GPU: 200 epochs of SGD, batch 128, lr 0.1 with
       warm-up and cosine decay, weight decay 5e-4 (not run on the CPU-only dev host).
"""
PRESETS = {
    "quick": {"epochs": 1, "batch_size": 64, "lr": 0.05, "warmup_epochs": 0.1, "limit_train": None,
              "calib_size": 2000},
    "full": {"epochs": 200, "batch_size": 128, "lr": 0.1, "warmup_epochs": 1.0, "limit_train": None,
             "calib_size": 5000},
}
