"""The model registry (names, the default of each kind), checkpoints and devices.

A checkpoint is a safetensors file (the trainable weights; the frozen backbone
comes from its own pretrained source) whose metadata holds a JSON config, with
the same JSON written beside it as ``NAME.json`` for people to read::

    {"architecture": "exemplar" | "histogram", "config": {...},
     "name": ..., "training": {...}, "metrics": {...}}

Loading never runs code from a file: safetensors holds only tensors, and a
``.pt``/``.pth`` file is read with ``torch.load(weights_only=True)``, which
refuses pickles that carry code. Nothing is inflated or read past what the largest
network could hold (:data:`MAX_CHECKPOINT_BYTES`), and the metadata is checked first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

from ..disk import DiskFullError, disk_full_message, is_disk_full
from .configs import EXEMPLAR_CONFIGS, EXEMPLAR_OUTPUT, HISTOGRAM_CONFIGS, HISTOGRAM_OUTPUT, MAX_PARAMETERS

# torch and the networks are imported when a model is loaded, not to list them (``list_models`` and the
# command line's help stay fast): every import inside a function below is there for that reason.
if TYPE_CHECKING:
    import torch

    from .base import Colorizer

__all__ = ["list_models", "load_model", "register_model", "resolve_device", "save_checkpoint",
           "checkpoint_files", "refuse_existing_checkpoint", "load_checkpoint", "CheckpointError", "model_info",
           "weights_dir", "default_model", "comparison_models", "DEFAULTS", "COMPARISON", "load_into", "build_network",
           "architectures", "attach_companion", "check_companion", "MAX_CHECKPOINT_BYTES", "MAX_COMPRESSION"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, refused, or of another architecture."""


def weights_dir() -> Path:
    return Path(str(resources.files("napari_colorize") / "weights"))


@dataclass
class ModelEntry:
    name: str
    kind: str
    description: str
    architecture: str  # "exemplar", "histogram" or "baseline"
    config: dict | None = None  # architecture config for networks
    weights: str | None = None  # file name in weights_dir()
    factory: Callable[[torch.device], Colorizer] | None = None  # baselines: factory(device)
    # output-stage options (ExemplarConfig's confidence, fallback, coherence, ...; HistogramConfig's coherence) set over the
    # weights' own config: two names can share one weights file with different output stages
    output: dict | None = None

    @property
    def weights_path(self) -> Path | None:
        return weights_dir() / self.weights if self.weights else None

    @property
    def available(self) -> bool:
        """Loadable with ``pretrained=True`` on this installation."""
        return self.architecture == "baseline" or (self.weights_path is not None and self.weights_path.exists())


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered already")
    _REGISTRY[entry.name] = entry
    return entry


def _welsh(device):
    from .adapters import BaselineColorizer  # (delays torch)
    from .baselines import welsh_ab  # (delays torch)

    return BaselineColorizer("welsh", welsh_ab, "Welsh et al. 2002")


def _levin(device):
    from .adapters import HintsOnlyColorizer  # (delays torch)

    return HintsOnlyColorizer("levin")


def _levin_paper(device):
    from .adapters import HintsOnlyColorizer  # (delays torch)

    return HintsOnlyColorizer("levin-paper", paper_affinity=True)


def _reinhard(device):
    from .adapters import BaselineColorizer  # (delays torch)
    from .baselines import reinhard_ab  # (delays torch)

    return BaselineColorizer("reinhard", reinhard_ab, "Reinhard et al. 2001")


def _warp(device):
    from .warp import WarpColorizer  # (delays torch)

    return WarpColorizer("warp", device=device)


def _warp_grey(device):
    from .warp import WarpColorizer  # (delays torch)

    return WarpColorizer("warp-grey", tau=0.03, reference="grey", device=device)


def _register_defaults() -> None:
    register_model(ModelEntry("welsh", "exemplar", "Welsh et al. 2002, global luminance/texture matching (no weights)",
                              "baseline", factory=_welsh))
    register_model(ModelEntry("reinhard", "exemplar", "Reinhard et al. 2001, global colour statistics (no weights)",
                              "baseline", factory=_reinhard))
    register_model(ModelEntry("levin", "hints", "Levin et al. 2004, colour points alone, spread edge-aware (hints=, "
                              "no reference; no weights)", "baseline", factory=_levin))
    register_model(ModelEntry("levin-paper", "hints", "Levin et al. 2004 with the paper's affinity alone (no absolute "
                              "edge term: a long spread leaks through strong edges; docs/MODELS.md)", "baseline",
                              factory=_levin_paper))
    register_model(ModelEntry("warp", "exemplar", "Parameter-free warp: reference colour moved by the cosine similarity "
                              "of frozen EfficientNet-Lite0 features (stride 4, no trained weights)",
                              "baseline", factory=_warp))
    register_model(ModelEntry("warp-grey", "exemplar", "Parameter-free warp matched grey to grey: the reference's keys "
                              "from its own lightness, temperature 0.03 (no trained weights)",
                              "baseline", factory=_warp_grey))
    ex = [
        ("exemplar", "cpu-warp-grey-cells", "Default: paper A's CPU network (EfficientNet-Lite0, axial attention) "
                                                  "with our correspondence prior (the warp matched grey to grey and coarse "
                                                  "to fine, gated per pixel, a hue-keeping chroma gain), a guided filter "
                                                  "on its output, and "
                                                  "colour made coherent per region where the reference is only related, "
                                                  "half of it from a histogram network (histogram-companion) given "
                                                  "the reference's histogram"),
        ("exemplar-plain", "cpu", "Paper A's CPU network without the prior (the earlier recipe): axial attention, "
                                  "two modules, all losses"),
        ("exemplar-standard", "cpu-standard", "Ablation (earlier recipe): standard (full 2-D) attention"),
        ("exemplar-single", "cpu-single", "Ablation (earlier recipe): one attention module per level"),
        ("exemplar-no-adv", "cpu", "Ablation (earlier recipe): trained without the adversarial loss"),
        ("exemplar-no-pixel", "cpu", "Ablation (earlier recipe): trained without the smooth-L1 pixel loss"),
        ("exemplar-no-hist", "cpu", "Ablation (earlier recipe): trained without the histogram loss"),
        ("exemplar-paper", "paper", "Paper A's configuration: VGG-19, h=256, e=64, 8 heads, attention from block 3"),
    ]
    for name, cfg, desc in ex:
        register_model(ModelEntry(name, "exemplar", desc, "exemplar", EXEMPLAR_CONFIGS[cfg].to_dict(),
                                  weights=f"{name}.safetensors", output=EXEMPLAR_OUTPUT if name == "exemplar" else None))
    register_model(ModelEntry("exemplar-direct", "exemplar", "The default until issue 18: the earlier default's weights "
                              "(run N, tuned) without the output stage, the warp dense: every pixel takes its own "
                              "best match", "exemplar",
                              EXEMPLAR_CONFIGS["cpu-warp-grey-gain-refine"].to_dict(), weights="exemplar-direct.safetensors"))
    register_model(ModelEntry("histogram", "histogram", "Default: paper B's CPU network (EfficientNet-Lite0, F_U projected to "
                              "16 channels, U-Net width 16) with our histogram prior (each bin's mass in the "
                              "attention, its colour in the values; the U-Net refines the expected colour), its colour made "
                              "coherent within regions of the grey image",
                              "histogram", HISTOGRAM_CONFIGS["cpu-prior"].to_dict(), weights="histogram.safetensors",
                              output=HISTOGRAM_OUTPUT))
    register_model(ModelEntry("histogram-companion", "histogram", "The histogram network `exemplar` mixes in: "
                              "`histogram` fine-tuned with the histograms of related photos from other sources (the "
                              "colour of the photo itself kept as the truth), without region coherence",
                              "histogram", HISTOGRAM_CONFIGS["cpu-prior"].to_dict(),
                              weights="histogram-companion.safetensors"))
    register_model(ModelEntry("histogram-plain", "histogram", "Paper B's CPU network without the prior (the earlier "
                              "recipe): EfficientNet-Lite0, F_U projected to 16 channels, U-Net width 16",
                              "histogram", HISTOGRAM_CONFIGS["cpu"].to_dict(), weights="histogram-plain.safetensors"))
    register_model(ModelEntry("histogram-paper", "histogram", "Paper B's configuration: VGG-19 features, U-Net width 64",
                              "histogram", HISTOGRAM_CONFIGS["paper"].to_dict(), weights="histogram-paper.safetensors"))


_register_defaults()


def list_models(include_untrained: bool = False, kind: str | None = None) -> list[str]:
    """Names that :func:`load_model` accepts with ``pretrained=True``: the learned
    models whose weights are installed, their ablations, and the classic baselines.

    Parameters
    ----------
    include_untrained : bool
        Also list architectures without shipped weights (loadable with ``pretrained=False``).
    kind : {None, "exemplar", "histogram", "hints"}
        Only models guided by a reference image (``"exemplar"``, the baselines included), by a
        histogram (``"histogram"``) or by colour points alone (``"hints"``: ``levin``).
    """
    if kind not in (None, "exemplar", "histogram", "hints"):
        raise ValueError(f"unknown kind {kind!r}; use 'exemplar', 'histogram', 'hints' or None")
    return [n for n, e in _REGISTRY.items()
            if (include_untrained or e.available) and (kind is None or e.kind == kind)]


#: the default model of each kind, in order of preference (the first installed one is the default):
#: for exemplar guidance the trained network when its weights are installed, else Welsh
DEFAULTS = {"exemplar": ("exemplar", "welsh"), "histogram": ("histogram",), "hints": ("levin",)}
#: a first comparison: the shipped networks and the classic baselines (not every ablation)
COMPARISON = ("exemplar", "histogram", "warp-grey", "welsh", "reinhard")


def default_model(kind: str = "exemplar") -> str:
    """The default installed model for ``kind`` ("exemplar" or "histogram"): the first of
    :data:`DEFAULTS` installed, else the first installed model of that kind. ValueError when there
    is none (no histogram weights installed)."""
    if kind not in DEFAULTS:
        raise ValueError(f"unknown kind {kind!r}; use 'exemplar' or 'histogram'")
    names = list_models(kind=kind)
    for name in DEFAULTS[kind] + tuple(names):
        if name in names:
            return name
    raise ValueError(f"no {kind} model is installed")


def comparison_models() -> list[str]:
    """The models of :data:`COMPARISON` that are installed."""
    names = list_models()
    return [n for n in COMPARISON if n in names]


def model_info(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models(True))}") from None


# ------------------------------------------------------------------------ devices
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu. Asking for an absent device is an error."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if device is None:
        device = "auto"
    if not isinstance(device, str) or not device.strip():  # (0 or '' were taken as 'auto')
        raise ValueError(f"device must be a name: 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', not {device!r}")
    device = device.strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available on this machine; "
                               "use device='cpu' or 'auto'")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return dev
    if device == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise RuntimeError("device 'mps' was asked for, but Apple MPS is not available; use 'cpu' or 'auto'")
        return torch.device("mps")
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


# -------------------------------------------------------------------- checkpoints
def architectures() -> dict[str, tuple[type, type]]:
    """Each network architecture's name -> ``(network class, wrapper class)``: the one dispatch on
    architecture (each class says its own in ``architecture``)."""
    from .adapters import ExemplarNetColorizer, HistogramNetColorizer  # (delays torch)
    from .exemplar import ExemplarNet  # (delays torch)
    from .histogram import HistogramNet  # (delays torch)

    wrappers = {w.architecture: w for w in (ExemplarNetColorizer, HistogramNetColorizer)}
    return {n.architecture: (n, wrappers[n.architecture]) for n in (ExemplarNet, HistogramNet)}


def build_network(architecture: str, config: dict, pretrained_backbone: bool = True) -> torch.nn.Module:
    known = architectures()
    if architecture not in known:
        raise CheckpointError(f"unknown architecture {architecture!r} (expected one of {sorted(known)})")
    cls = known[architecture][0]
    return cls(cls.config_class.from_dict(config), pretrained_backbone=pretrained_backbone)


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """The two files :func:`save_checkpoint` writes for ``path``: the ``.safetensors`` and its ``.json``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    return path, path.with_suffix(".json")


def refuse_existing_checkpoint(path: str | Path, flag: str = "overwrite=True") -> None:
    """Raise FileExistsError when a checkpoint at ``path`` would replace a file: the checkpoint, or a
    ``.json`` of the same name (perhaps a user's own file, not this checkpoint's metadata)."""
    existing = [str(p) for p in checkpoint_files(path) if p.exists()]
    if existing:
        weights, sidecar = checkpoint_files(path)
        raise FileExistsError(f"{' and '.join(existing)} {'exist' if len(existing) > 1 else 'exists'}: a checkpoint "
                              f"{weights.name} is written with its metadata as {sidecar.name}, and neither is "
                              f"replaced unless you pass {flag}; choose another name")


def save_checkpoint(network: torch.nn.Module, path: str | Path, meta: dict, dtype=None, overwrite: bool = True) -> Path:
    """Write the trainable weights (``dtype``, default float16) and ``meta`` (JSON) to ``path``
    (.safetensors) and ``.json``. ``overwrite=False``: refuse when either file exists
    (:func:`refuse_existing_checkpoint`)."""
    import torch
    from safetensors.torch import save_file

    dtype = torch.float16 if dtype is None else dtype
    if not overwrite:
        refuse_existing_checkpoint(path)
    path = checkpoint_files(path)[0]
    meta = dict(meta)
    meta.setdefault("architecture", type(network).architecture)
    meta.setdefault("config", network.config.to_dict())
    sd = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
          for k, v in network.trainable_state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    side = path.with_suffix(".json")
    side_tmp = side.with_name(side.name + ".tmp")
    try:  # both written aside first: a full disk leaves neither a partial file nor a temporary one
        save_file(sd, str(tmp), metadata={"napari_colorize": json.dumps(meta)})
        tmp.chmod(0o644)
        side_tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(path)
        side_tmp.replace(side)
    except BaseException as e:
        for t in (tmp, side_tmp):
            t.unlink(missing_ok=True)
        if is_disk_full(e):
            need = sum(v.numel() * v.element_size() for v in sd.values())
            raise DiskFullError(disk_full_message(path, need)) from None
        raise
    return path


#: the most bytes a checkpoint's entries may hold, uncompressed: the largest network a config admits
#: (:data:`~napari_colorize.models.configs.MAX_PARAMETERS`) in float64, and 64 MB for the rest (names, metadata)
MAX_CHECKPOINT_BYTES = MAX_PARAMETERS * 8 + 64 * 2**20
#: the highest compression ratio a checkpoint's entries may have: weights are nearly incompressible (deflate
#: gains a few percent on float16, torch.save stores them uncompressed); a deflate bomb reaches about 1000:1
MAX_COMPRESSION = 20.0

# the size of one value of each safetensors dtype (its header declares every tensor's dtype and shape)
_ITEM_BYTES = {"F64": 8, "I64": 8, "U64": 8, "C64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
               "U16": 2}


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} kB"


def _refuse_size(name: str, total: int, what: str) -> None:
    """CheckpointError when ``total`` bytes (uncompressed) exceed :data:`MAX_CHECKPOINT_BYTES`."""
    if total > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"refused to load {name}: {what} {_mb(total)}, more than the {_mb(MAX_CHECKPOINT_BYTES)} the largest "
            f"network napari-colorize builds needs ({MAX_PARAMETERS / 1e6:.0f} M parameters of 8 bytes): it is not "
            "a napari-colorize checkpoint")


def _checked_torch_archive(path: Path) -> bool:
    """Check a torch file's zip directory before anything is inflated: the entries' total size (uncompressed)
    and their compression ratio (:data:`MAX_CHECKPOINT_BYTES`, :data:`MAX_COMPRESSION`; CheckpointError).
    True when every entry is stored uncompressed (as torch.save writes them: its tensors can be mapped,
    not read, until the metadata is checked)."""
    import zipfile

    if not zipfile.is_zipfile(path):  # torch's format before 1.6: an uncompressed stream, as large as it holds
        _refuse_size(path.name, path.stat().st_size, "it holds")
        return False
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path.name}: not a complete torch file ({e})") from e
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    _refuse_size(path.name, total, f"its {len(infos)} entries inflate to")
    if total > 2**20 and total > MAX_COMPRESSION * max(packed, 1):
        raise CheckpointError(
            f"refused to load {path.name}: its entries are compressed {total / max(packed, 1):.0f}:1 ({_mb(packed)} "
            f"inflating to {_mb(total)}), a ratio no checkpoint of weights has (at most {MAX_COMPRESSION:.0f}:1): "
            "a decompression bomb, or not weights; save the weights again with save_checkpoint (safetensors)")
    return all(i.compress_type == zipfile.ZIP_STORED for i in infos)


def _parsed_meta(raw, name: str) -> dict:
    """The checkpoint's metadata (a JSON text, or what torch.load gave), checked (:func:`_checked_meta`)."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{name}: its config is not valid JSON ({e})") from e
    return _checked_meta(raw, name)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint's tensors and metadata without running any code from it. The metadata is
    checked before any tensor is read, and the tensors' total size against :data:`MAX_CHECKPOINT_BYTES`
    (a safetensors header declares it; a torch file's zip directory, with the compression ratio,
    :data:`MAX_COMPRESSION`, before anything is inflated)."""
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        incomplete = f"cannot read {path.name}: not a complete safetensors file"
        try:
            handle = safe_open(str(path), framework="pt")
        except Exception as e:  # SafetensorError and friends: truncated or not a safetensors file
            raise CheckpointError(f"{incomplete} ({e})") from e
        with handle as f:
            try:
                meta_raw = (f.metadata() or {}).get("napari_colorize")
                declared = {k: f.get_slice(k) for k in f.keys()}  # (each tensor's header: shape and dtype)
            except Exception as e:
                raise CheckpointError(f"{incomplete} ({e})") from e
            side = path.with_suffix(".json")
            if meta_raw is None and side.exists():
                meta_raw = side.read_text()
            if meta_raw is None:
                raise CheckpointError(f"{path.name} has no napari-colorize config (metadata or a .json beside it)")
            meta = _parsed_meta(meta_raw, path.name)  # (before any tensor is read, as their sizes:)
            total = sum(math.prod(int(d) for d in t.get_shape()) * _ITEM_BYTES.get(t.get_dtype(), 1)
                        for t in declared.values())
            _refuse_size(path.name, total, f"its {len(declared)} tensors hold")
            try:
                sd = {k: f.get_tensor(k) for k in declared}
            except Exception as e:
                raise CheckpointError(f"{incomplete} ({e})") from e
        return _migrated(_checked_tensors(sd, path.name), meta)
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        import pickle

        stored = _checked_torch_archive(path)
        try:  # (stored entries are mapped, not read: the metadata is checked before the tensors are touched)
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=stored)
        except pickle.UnpicklingError as e:
            raise CheckpointError(
                f"refused to load {path.name}: it is not plain weights (loading it would run code from the file). "
                "Only safetensors files and weights-only torch files are accepted."
            ) from e
        except Exception as e:
            raise CheckpointError(f"cannot read {path.name}: {e}") from e
        if not (isinstance(obj, dict) and "state_dict" in obj and "meta" in obj):
            raise CheckpointError(f"{path.name} is not a napari-colorize checkpoint (expected keys 'state_dict' and 'meta')")
        meta = _parsed_meta(obj["meta"], path.name)
        return _migrated(_checked_tensors(obj["state_dict"], path.name), meta)
    raise CheckpointError(f"unknown checkpoint format {path.suffix!r}: use a .safetensors file")


def _migrated(sd: dict, meta: dict) -> tuple[dict, dict]:
    """Weights saved by earlier versions, under today's names (exemplar networks: the pyramid decoder
    became its own module)."""
    if meta.get("architecture") == "exemplar":
        from .exemplar import migrate_state_dict  # (delays torch)

        sd = migrate_state_dict(sd)
    return sd, meta


def _checked_meta(meta, source: str) -> dict:
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: its metadata must be a JSON object, not {type(meta).__name__}")
    if meta.get("architecture") not in ("exemplar", "histogram"):
        raise CheckpointError(f"{source}: its config names no known architecture ({meta.get('architecture')!r}; "
                              "expected 'exemplar' or 'histogram')")
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{source}: its metadata has no 'config' object")
    return meta


def _checked_tensors(sd, source: str) -> dict[str, torch.Tensor]:
    """Only named tensors, all finite (NaN or infinite weights would write black images)."""
    import torch

    if not isinstance(sd, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise CheckpointError(f"{source}: its weights are not a mapping of names to tensors")
    # float8, bool, complex...: never written by save_checkpoint, and not weights one can compute with here
    allowed = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int32)
    odd = sorted({str(v.dtype).replace("torch.", "") for v in sd.values() if v.dtype not in allowed})
    if odd:
        names = [k for k, v in sd.items() if v.dtype not in allowed]
        raise CheckpointError(f"{source}: {len(names)} tensor(s) hold {', '.join(odd)} values (e.g. {names[:3]}); "
                              "napari-colorize weights are float16, bfloat16, float32 or float64 (and integer "
                              "counters): the file was not written by napari-colorize, or converted; export it "
                              "again in float16 or float32")
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} weight tensor(s) hold NaN or infinite values "
                              f"(e.g. {bad[:3]}): the file is damaged or the training diverged")
    return sd


def _network_colorizer(name: str, network: torch.nn.Module, meta: dict, device, pretrained: bool = True) -> Colorizer:
    model = architectures()[type(network).architecture][1](name, network, meta, device)
    return attach_companion(model, device, pretrained)


def attach_companion(model: Colorizer, device=None, pretrained: bool = True) -> Colorizer:
    """Give an exemplar colouriser whose config mixes in a histogram network (``histogram_mix``) that
    network: the registered histogram model its config's ``histogram_model`` names (random weights with
    ``pretrained=False``) on the model's own device unless ``device`` says otherwise, loaded once per
    colouriser, and again when the config names another registered network than the one attached (a
    network given from a file is kept). Any other model is returned as it is."""
    config = getattr(getattr(model, "network", None), "config", None)
    name = getattr(config, "histogram_model", "histogram")
    attached = getattr(getattr(model, "companion", None), "source", None)
    stale = attached in _REGISTRY and attached != name
    if getattr(config, "histogram_mix", 0) and (getattr(model, "companion", None) is None or stale):
        check_companion(name, repr(model.name))
        try:
            model.companion = load_model(name, device if device is not None else model.device, pretrained)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{model.name!r} mixes in the histogram network {name!r} (histogram_mix "
                                    f"{config.histogram_mix}), whose weights are missing: {e}") from e
    return model


def check_companion(name: str, who: str) -> None:
    """ValueError unless ``name`` is a registered histogram network (what ``histogram_model`` may name)."""
    entry = _REGISTRY.get(name)
    if entry is None or entry.kind != "histogram" or entry.architecture != "histogram":
        known = sorted(n for n, e in _REGISTRY.items() if e.architecture == "histogram")
        raise ValueError(f"{who} mixes in histogram_model {name!r}, which is not a registered histogram network "
                         f"(known: {', '.join(known)})")


def _check_fits(network: torch.nn.Module, sd: dict, meta: dict, source: str) -> None:
    own = network.trainable_state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{source} does not fit the {meta.get('architecture')} architecture it names: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong)} of another shape (e.g. {wrong[:3]})"
        )


def load_into(network: torch.nn.Module, sd: dict, meta: dict, source: str) -> None:
    """Load checkpoint weights ``sd`` (trainable tensors) into ``network``, after checking they fit it
    (:class:`CheckpointError` naming ``source`` when not)."""
    _check_fits(network, sd, meta, source)
    full = network.state_dict()
    full.update({k: v.to(full[k].dtype) for k, v in sd.items()})
    network.load_state_dict(full)


def load_model(name_or_path: str | Path, device: str | torch.device = "auto", pretrained: bool = True) -> Colorizer:
    """Load a model by registry name or from a checkpoint file.

    Parameters
    ----------
    name_or_path : str or Path
        A name from :func:`list_models` or a ``.safetensors`` checkpoint.
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}
    pretrained : bool
        False builds the same architecture with random weights (backbone too),
        for tests and timing (the torchvision convention).
    """
    dev = resolve_device(device)
    key = str(name_or_path)
    model = _load_model(key, dev, pretrained)
    # what another process (a cluster's worker) can load the same model from
    if key in _REGISTRY:
        model.source = key if (pretrained or _REGISTRY[key].architecture == "baseline") else None
    else:
        model.source = str(Path(key).resolve())
    entry = _REGISTRY.get(key)
    if entry is None:
        model.weights_file = model.source
    elif pretrained and entry.architecture != "baseline" and entry.weights_path is not None:
        model.weights_file = str(entry.weights_path)
    return model


def _load_model(key: str, dev, pretrained: bool) -> Colorizer:
    if key in _REGISTRY:
        entry = _REGISTRY[key]
        if entry.architecture == "baseline":
            return entry.factory(dev)
        if not pretrained:
            config = {**entry.config, **(entry.output or {})}
            net = build_network(entry.architecture, config, pretrained_backbone=False)
            meta = {"architecture": entry.architecture, "config": config, "name": key, "pretrained": False}
            return _network_colorizer(key, net, meta, dev, pretrained=False)
        if not entry.available:
            raise FileNotFoundError(
                f"no trained weights are installed for {key!r} (expected {entry.weights_path}). "
                f"Models with weights here: {', '.join(list_models())}. Use pretrained=False for a randomly "
                "initialised network, or pass the path of a checkpoint."
            )
        return _load_checkpoint_model(entry.weights_path, dev, name=key, output=entry.output)
    path = Path(key)
    if path.suffix or path.exists():
        return _load_checkpoint_model(path, dev)
    raise ValueError(f"unknown model {key!r}; known models: {', '.join(list_models())} "
                     f"(without shipped weights: {', '.join(sorted(set(list_models(True)) - set(list_models())))})")


def _load_checkpoint_model(path: Path, dev: torch.device, name: str | None = None,
                           output: dict | None = None) -> Colorizer:
    sd, meta = load_checkpoint(path)
    arch = meta["architecture"]
    if output:
        meta = {**meta, "config": {**meta["config"], **output}}
    # build_network checks the config's types and ranges (which bound the network's size) before it
    # builds anything; then the shapes are compared. (Not on PyTorch's meta device: its initialisers
    # load torch._dynamo, which crashes napari.)
    try:
        if arch == "exemplar" and meta["config"].get("histogram_mix"):  # (the network it mixes in: before building)
            check_companion(meta["config"].get("histogram_model", "histogram"), path.name)
        net = build_network(arch, meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path.name}: its config does not describe a valid network ({e})") from e
    load_into(net, sd, meta, path.name)
    return _network_colorizer(name or meta.get("name") or path.stem, net, meta, dev)
