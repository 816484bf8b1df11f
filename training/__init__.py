"""Training, data and evaluation for napari-colorize's networks (not part of the installed library).

Run the scripts as modules from the repository root::

    python -m training.prepare_data data/
    python -m training.train_exemplar --data data/manifest.csv --out runs/exemplar
    python -m training.train_histogram --data data/manifest.csv --out runs/histogram
    python -m training.evaluate --data data/manifest.csv exemplar warp-grey welsh
    python -m training.paired runs/per_image.csv --baseline warp-grey
    torchrun --nproc_per_node 4 -m training.train_exemplar ...   # data parallel (DDP)
"""
