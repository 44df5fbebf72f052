"""Named training recipes; any flag given on the command line overrides the preset's value.

quick  a CPU run on a 2-core host in under 15 minutes end to end: one pass over the CIFAR-10
       training split at 3/4 of the input side (24 px for CIFAR; progressive resizing, a pass
       at 24 px costs 0.62 of one at 32 px), then half a pass at the full side. At 12,000
       images and equal time, that beat plain 32-px training by 3 pp on the largest subnet.
       Batch 32 and lr 0.05 won short probes against batch 64 and lr 0.1 / 0.2. No
       pad-and-crop, flips only: with each image seen once or twice, the crop only makes the
       task harder (a 12,000-image probe lost 5.4 pp with it). All in
       bench/results/quick_preset_probes.md.
full   the real recipe, meant for a GPU: 200 epochs of SGD, batch 128, lr 0.1 with
       warm-up and cosine decay, weight decay 5e-4 (not run on the CPU-only dev host).
camera photographs at a camera loop's input side (Imagenette, a user's own photo folders): random
       resized crops and flips, label smoothing, progressive resizing (3/4 of the side for the
       first 1.5 epochs). 96 px: at equal training compute it beat 128 px (more epochs for the same
       time) in bench/results/camera_preset_probes.md; 6 epochs keep the whole build on
       Imagenette under 20 minutes on a 2-core CPU (14.3 min from an empty cache,
       bench/results/build_camera_int8_per_tensor.md).
"""
PRESETS = {
    "quick": {"img_size": 32, "epochs": 1.5, "batch_size": 32, "lr": 0.05, "warmup_epochs": 0.1,
              "limit_train": None, "calib_size": 2000, "crop_pad": 0, "crop_scale": 0.0, "label_smoothing": 0.0,
              "low_res_scale": 0.75, "low_res_epochs": 1.0},
    "full": {"img_size": 32, "epochs": 200, "batch_size": 128, "lr": 0.1, "warmup_epochs": 1.0,
             "limit_train": None, "calib_size": 5000, "crop_pad": 4, "crop_scale": 0.0, "label_smoothing": 0.0,
             "low_res_scale": 0.0, "low_res_epochs": 0.0},
    "camera": {"img_size": 96, "epochs": 6.0, "batch_size": 32, "lr": 0.05, "warmup_epochs": 0.2,
               "limit_train": None, "calib_size": 1000, "crop_pad": 0, "crop_scale": 0.35, "label_smoothing": 0.1,
               "low_res_scale": 0.75, "low_res_epochs": 1.5},
}
