"""Architecture configs of the networks: plain dataclasses, no torch.

They are checked for type and range (``validate``) before anything is built, since they can come
from files, and the registry lists models from them without importing torch (``napari-colorize
models`` answers at once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .checks import check_choice, check_coefficients, check_float, check_int, check_ints, check_name

__all__ = ["ExemplarConfig", "HistogramConfig", "EXEMPLAR_CONFIGS", "HISTOGRAM_CONFIGS", "LEVELS", "BACKBONE_NAMES",
           "MAX_PARAMETERS"]

def _checked(cls, d: dict, kind: str):
    """A config built from a dict: no unknown keys, then :meth:`validate`."""
    unknown = set(d) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {kind} config keys {sorted(unknown)}")
    cfg = cls(**d)
    cfg.validate()
    return cfg


BACKBONE_NAMES = ("efficientnet_lite0", "vgg19")  # models/backbones.py: BACKBONES (a test checks they agree)

LEVELS = 5

#: the most trainable parameters (the weights a checkpoint holds; the frozen backbone comes from its own source)
#: of any network whose config passes ``validate``: the largest is a HistogramConfig with the VGG-19 backbone,
#: channels 512, fu_channels 512, unet_width 64 and unet_depth 4 (75.9 M); an ExemplarConfig reaches 58.0 M
#: (``tests/test_checkpoint_checks.py`` builds the largest). It bounds what a checkpoint may hold.
MAX_PARAMETERS = 76_000_000

#: backbone taps (1-based) whose best matches the per-pixel match confidence weighs, and its features
#: (``best{l}``: the best cosine similarity at tap l); see :mod:`napari_colorize.models.coherence`
CONFIDENCE_LEVELS = (2, 4, 5)
CONFIDENCE_FEATURES = ("best2", "best4", "best5")


@dataclass
class ExemplarConfig:
    """Architecture of an exemplar network.

    Attributes
    ----------
    backbone : str
        ``"efficientnet_lite0"`` or ``"vgg19"``.
    hidden : int or tuple of 5 ints
        ``h``: projection width, per level 1..5 when a tuple (bottleneck: level 5's).
    head_dim : int or tuple of 4 ints
        ``e``: width of the prediction heads (per head P1..P4 when a tuple).
    heads : int
        Attention heads.
    attention : {"axial", "standard"}
    attention_levels : int
        ``N``: attention at the last N levels (3 = "from block 3", the paper's choice).
    modules_per_level : int
        1 or 2 stacked attention modules (separate weights).
    span : int or None
        Attention span ``m`` in feature cells (None: the whole axis / lattice).
    train_size : int
        Image size the relative position tables are sized for.
    prior : {"none", "warp"}
        ``"warp"`` adds the correspondence prior (our departure from the paper, see
        :mod:`napari_colorize.models.warp`): the reference's ab warped by the cosine
        similarity of the frozen backbone features at ``prior_level`` enters the decoder at
        that level, and every head P_s mixes it with its own prediction through a learned
        per-pixel gate, ``P_s = warp_s + g_s (head_s - warp_s)``, ``g_s`` starting near 0:
        an untrained network reproduces the warp.
    prior_level : int
        Backbone tap of the prior (2: stride 4 for EfficientNet-Lite0).
    prior_temperature : float
        Initial softmax temperature of the warp (learned).
    prior_reference : {"colour", "grey"}
        How the reference is shown to the backbone for the warp's keys: in colour (as the
        attention sees it), or as its own lightness in neutral grey, like the target ("grey":
        grey-to-grey matching; measured better on both protocols, see docs/MODELS.md).
    prior_adapt : bool
        A learned 1x1 map of the backbone features before they are matched (identity at the
        start: the warp is unchanged until training moves it).
    prior_gain : bool
        A learned per-pixel chroma gain on every head's output, ``P_s <- P_s (1 + a_s)`` with
        ``a_s`` in [-0.5, 0.5] (zero at the start): it can restore the saturation that the warp's
        softmax average mutes without ever changing a hue (issue 10's fringes were hues the heads
        made up).
    prior_cells : int
        0 (every reference position, the dense warp) or the number of reference cells at the coarse
        level ``prior_cells_level`` among which each coarse cell of the target looks for its fine
        matches (:func:`~napari_colorize.models.warp.coarse_to_fine_warp`: *what* decided coarse,
        *where* fine). Needs ``prior_reference="grey"`` (the coarse keys are the grey view's).
    prior_cells_level : int
        Backbone tap of the coarse level (4: stride 16 for EfficientNet-Lite0).
    prior_cells_gate : pair of floats or None
        ``(lo, hi)``: the coarse-to-fine warp in full for an image whose mean match confidence is at least
        ``hi`` (a reference of the same scene), the dense warp at ``lo`` or below (a reference that is only
        related), linearly blended between (``ExemplarNet.cells_share``); None: coarse to fine always.
    prior_cells_related : int
        0 (the dense warp at the gate's low end, for a reference that is only related) or the number of
        reference cells the coarse-to-fine warp searches there instead: a wider search than
        ``prior_cells``, which still leaves out the reference cells least like each target cell.
    refine : int
        Window (odd, 3-31 pixels) of a guided filter (He, Sun & Tang 2010; ``exemplar.guided_filter``)
        that re-aligns the predicted chroma with the grey target's own edges once P1 is upsampled to
        the working size; 0 (the papers' output) leaves it off. No parameters: the training losses
        see P1-P4 as before; it is applied where the output is made (``colorize``), see
        docs/MODELS.md for what it measured.
    refine_eps : float
        The filter's regulariser, in squared units of the normalised L (``L/50 - 1``): smaller keeps
        more of the chroma's own edges.
    confidence_ring : int
        Cells (0: none, up to 2) of the reference's border, at each level, that the match confidence
        does not search: with the backbone's zero padding, the border cells of any two images are alike,
        so a target's border would find its "best match" there and show a frame of false confidence.
        The warp and the attention still use every cell.
    confidence_cells : int
        0 (the match confidence's finest level searches every reference position) or the number of
        reference cells at ``prior_cells_level`` it searches instead, chosen for each target cell as the
        coarse-to-fine warp chooses them (:func:`~napari_colorize.models.warp.coarse_to_fine_best`): the
        dense search at stride 4 costs as much as the rest of the confidence; off with ``confidence_ring``.
    confidence : dict or None
        Coefficients of the per-pixel match confidence
        (:func:`~napari_colorize.models.coherence.match_confidence`: ``bias`` and any of
        :data:`~napari_colorize.models.coherence.CONFIDENCE_FEATURES`); None: the library's fitted
        defaults (:data:`~napari_colorize.models.coherence.DEFAULT_CONFIDENCE`).
    fallback : float
        0 (the papers' output) to 1: where the confidence is low, the output falls back to the
        reference's palette conditioned on lightness, ``c' = 1 - fallback (1 - c)``,
        ``ab = c' ab + (1 - c') palette`` (:func:`~napari_colorize.models.coherence.coherent_ab`).
    coherence : int
        Radius in working-size pixels (0: off, up to 64) of the confidence-weighted edge-aware spreading
        that makes colour agree within regions of the target (applied after ``fallback``).
    palette_chroma : float
        Chroma scale (0-1.5) of the fallback palette.
    keep_chroma : bool
        After the spreading, scale the image's chroma back to its mean before it (one factor, 1-1.5):
        averaging colours over a region mutes them.
    scene_coherence : int
        0 (off) or the radius in working-size pixels (up to 64) of a region's colour (a confidence-weighted
        edge-aware spreading, :func:`~napari_colorize.models.coherence.odd_colours`) that a pixel whose colour is
        far from it takes, as much as ``coherence_gate`` shuts the related-reference stage (a reference of the
        same scene): an odd match (a bright stem matched to a tomato's highlight) paints no blotch. Not in the
        shipped default (docs/MODELS.md, issue 18's tenth step: fewer blotches, a little less of the
        reference's colour).
    scene_outlier : float
        How far (ab units, 1-100) a pixel's colour must be from its region's to move: fully from twice this.
    coherence_gate : pair of floats or None
        ``(lo, hi)``: the fallback and spreading apply in full to an image whose mean match confidence is
        at most ``lo`` (a reference that is only related), not at all from ``hi`` on (a reference of the
        same scene, whose per-pixel matches are right), linearly between
        (:func:`~napari_colorize.models.coherence.image_gate`); None: in full always.
    dark_chroma : float
        Lightness ``L*`` (0: off, up to 50) below which the chroma fades, in proportion to how unsure the
        match is (:func:`~napari_colorize.models.coherence.fade_dark`): near-black pixels of a photo
        carry little colour, and a tint on them is what most harms the picture with a related reference.
    black_chroma : float
        Lightness ``L*`` (0: off, up to 20) below which the chroma fades to none at black whatever the
        pixel's confidence, as much as ``coherence_gate`` applies to the image
        (:func:`~napari_colorize.models.coherence.fade_black`): a chroma too small to see there still
        changes the ratios of the near-zero RGB values a lot.
    palette_modes : int
        0 (off) or the number (2-32) of the reference's main colours (k-means of its ab) among which
        each region of the target chooses, after ``coherence``
        (:func:`~napari_colorize.models.coherence.palette_vote`): every pixel votes for the colour
        nearest its own, the votes are spread edge-aware over ``palette_radius`` (1-64), and where one
        colour holds more than ``palette_share`` (0.05-0.95) of them the region takes it; a final spread
        of ``palette_smooth`` (0-64) softens the steps between regions, and a Gaussian of
        ``palette_blur`` pixels (0-8; 0: none) the chroma edges. Applies as much as
        ``coherence_gate`` says, after ``fallback`` and ``coherence`` (with either of them on).
    palette_radius, palette_share, palette_smooth, palette_blur
        See ``palette_modes``.
    histogram_mix : float
        0 (off) to 1: the share of the colour that comes from a histogram network (paper B; the
        registered model ``histogram_model``), given the reference's colour histogram, as much as
        ``coherence_gate`` applies, after the palette and before ``dark_chroma``: ``ab + g m (ab_hist - ab)``. The two networks place colour
        differently (one by matching positions, one by what a region is), and where they disagree the
        mixture is duller, where they agree it keeps the colour. :func:`~napari_colorize.load_model`
        loads the histogram network beside the exemplar one (``ExemplarNetColorizer.companion``).
    histogram_scale : float
        The histogram network's working size as a fraction (0.25-1) of the exemplar network's (its colour
        is resized back): chroma varies slowly, and a smaller size costs less.
    histogram_model : str
        The registered histogram model that ``histogram_mix`` mixes in (a name, never a path; default the
        shipped ``histogram``).
    """

    backbone: str = "efficientnet_lite0"
    hidden: int | tuple[int, ...] = (16, 32, 64, 96, 128)
    head_dim: int | tuple[int, ...] = (16, 16, 32, 32)
    heads: int = 4
    attention: str = "axial"
    attention_levels: int = 2
    modules_per_level: int = 2
    span: int | None = None
    train_size: int = 224
    prior: str = "none"
    prior_level: int = 2
    prior_temperature: float = 0.05
    prior_reference: str = "colour"
    prior_adapt: bool = False
    prior_gain: bool = False
    prior_cells: int = 0
    prior_cells_level: int = 4
    prior_cells_gate: tuple[float, float] | None = None
    prior_cells_related: int = 0
    refine: int = 0
    refine_eps: float = 1e-3
    confidence: dict | None = None
    confidence_ring: int = 0
    confidence_cells: int = 0
    fallback: float = 0.0
    coherence: int = 0
    palette_chroma: float = 1.0
    keep_chroma: bool = False
    coherence_gate: tuple[float, float] | None = None
    scene_coherence: int = 0
    scene_outlier: float = 10.0
    dark_chroma: float = 0.0
    black_chroma: float = 0.0
    palette_modes: int = 0
    palette_radius: int = 16
    palette_share: float = 0.5
    palette_smooth: int = 8
    palette_blur: float = 0.0
    histogram_mix: float = 0.0
    histogram_scale: float = 1.0
    histogram_model: str = "histogram"
    extra: dict = field(default_factory=dict)

    def hidden_at(self, level: int) -> int:
        """h of level 1..5."""
        return self.hidden if isinstance(self.hidden, int) else int(self.hidden[level - 1])

    def head_dim_at(self, scale: int) -> int:
        """e of head P1..P4."""
        return self.head_dim if isinstance(self.head_dim, int) else int(self.head_dim[scale - 1])

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("hidden", "head_dim", "coherence_gate", "prior_cells_gate"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExemplarConfig":
        d = dict(d)
        for k in ("hidden", "head_dim", "coherence_gate", "prior_cells_gate"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return _checked(cls, d, "exemplar")

    def validate(self) -> None:
        """Types and ranges, checked before anything is built (configs come from files)."""
        check_choice("backbone", self.backbone, BACKBONE_NAMES)
        # (the ranges bound a network to MAX_PARAMETERS: a config from a file cannot make the loader
        # allocate without bound)
        check_ints("hidden", self.hidden, LEVELS, 4, 512)
        check_ints("head_dim", self.head_dim, LEVELS - 1, 2, 512)
        check_int("heads", self.heads, 1, 64)
        check_choice("attention", self.attention, ("axial", "standard"))
        check_int("attention_levels", self.attention_levels, 1, LEVELS)
        check_int("modules_per_level", self.modules_per_level, 1, 2)
        check_int("span", self.span, 1, 4096, allow_none=True)
        check_int("train_size", self.train_size, 32, 4096)
        check_choice("prior", self.prior, ("none", "warp"))
        check_int("prior_level", self.prior_level, 1, LEVELS - 1)
        check_float("prior_temperature", self.prior_temperature, 1e-3, 10.0)
        check_choice("prior_reference", self.prior_reference, ("colour", "grey"))
        check_choice("prior_adapt", self.prior_adapt, (False, True))
        check_choice("prior_gain", self.prior_gain, (False, True))
        if self.prior_gain and self.prior != "warp":
            raise ValueError("config: prior_gain needs prior='warp'")
        check_int("prior_cells", self.prior_cells, 0, 4096)
        check_int("prior_cells_level", self.prior_cells_level, 1, LEVELS)
        check_int("prior_cells_related", self.prior_cells_related, 0, 4096)
        if self.prior_cells_related and not self.prior_cells:
            raise ValueError("config: prior_cells_related needs prior_cells (the coarse-to-fine warp)")
        if self.prior_cells and (self.prior != "warp" or self.prior_reference != "grey"
                                 or self.prior_cells_level <= self.prior_level):
            raise ValueError("config: prior_cells needs prior='warp', prior_reference='grey' and a "
                             "prior_cells_level coarser than prior_level")
        check_int("refine", self.refine, 0, 31)
        if self.refine and (self.refine < 3 or self.refine % 2 == 0):
            raise ValueError(f"config: refine must be 0 (off) or an odd window of 3-31 pixels, not {self.refine}")
        check_float("refine_eps", self.refine_eps, 1e-6, 1.0)
        check_coefficients("confidence", self.confidence, ("bias",) + CONFIDENCE_FEATURES)
        check_int("confidence_ring", self.confidence_ring, 0, 2)
        check_int("confidence_cells", self.confidence_cells, 0, 4096)
        check_float("fallback", self.fallback, 0.0, 1.0)
        check_int("coherence", self.coherence, 0, 64)
        check_int("scene_coherence", self.scene_coherence, 0, 64)
        check_float("scene_outlier", self.scene_outlier, 1.0, 100.0)
        if self.scene_coherence and self.coherence_gate is None:
            raise ValueError("config: scene_coherence needs coherence_gate (it applies as much as the gate calls the "
                             "reference the same scene)")
        check_float("palette_chroma", self.palette_chroma, 0.0, 1.5)
        check_choice("keep_chroma", self.keep_chroma, (False, True))
        check_float("dark_chroma", self.dark_chroma, 0.0, 50.0)
        check_float("black_chroma", self.black_chroma, 0.0, 20.0)
        check_int("palette_modes", self.palette_modes, 0, 32)
        if self.palette_modes == 1:
            raise ValueError("config 'palette_modes' must be 0 (off) or 2 to 32 colours, not 1")
        check_int("palette_radius", self.palette_radius, 1, 64)
        check_float("palette_share", self.palette_share, 0.05, 0.95)
        check_int("palette_smooth", self.palette_smooth, 0, 64)
        check_float("palette_blur", self.palette_blur, 0.0, 8.0)
        check_float("histogram_mix", self.histogram_mix, 0.0, 1.0)
        check_float("histogram_scale", self.histogram_scale, 0.25, 1.0)
        check_name("histogram_model", self.histogram_model)
        check_gate("coherence_gate", self.coherence_gate)
        check_gate("prior_cells_gate", self.prior_cells_gate)
        if not isinstance(self.extra, dict):
            raise ValueError("config 'extra' must be an object")
        for level in range(LEVELS - self.attention_levels + 1, LEVELS + 1):
            if self.hidden_at(level) % self.heads:
                raise ValueError(f"config: hidden size {self.hidden_at(level)} of level {level} is not divisible "
                                 f"by {self.heads} heads")


EXEMPLAR_CONFIGS: dict[str, ExemplarConfig] = {
    # shipped CPU default: EfficientNet-Lite0, axial, two modules at the last two levels
    # (train_size 160: the CPU training crops, which size the relative position tables)
    "cpu": ExemplarConfig(train_size=160),
    "cpu-standard": ExemplarConfig(attention="standard", train_size=160),
    "cpu-single": ExemplarConfig(modules_per_level=1, train_size=160),
    # our default since the correspondence prior: the CPU network plus the warp prior
    "cpu-warp": ExemplarConfig(prior="warp", train_size=160),
    # the prior matched grey to grey (the reference's keys from its lightness), sharper softmax
    "cpu-warp-grey": ExemplarConfig(prior="warp", prior_reference="grey", prior_temperature=0.03, train_size=160),
    # ... with the matched features learned (identity at the start)
    "cpu-warp-grey-adapt": ExemplarConfig(prior="warp", prior_reference="grey", prior_temperature=0.03,
                                          prior_adapt=True, train_size=160),
    # ... with a chroma gain on every head (hue kept)
    "cpu-warp-grey-gain": ExemplarConfig(prior="warp", prior_reference="grey", prior_temperature=0.03,
                                         prior_adapt=True, prior_gain=True, train_size=160),
    # ... whose output's chroma follows the target's edges (a guided filter, no parameters)
    "cpu-warp-grey-gain-refine": ExemplarConfig(prior="warp", prior_reference="grey", prior_temperature=0.03,
                                                prior_adapt=True, prior_gain=True, train_size=160, refine=5),
    # ... whose warp is matched coarse to fine (the shipped default since issue 18's third step)
    "cpu-warp-grey-cells": ExemplarConfig(prior="warp", prior_reference="grey", prior_temperature=0.03,
                                          prior_adapt=True, prior_gain=True, train_size=160, refine=5, prior_cells=16),
    # paper A, Sec. 4.1: VGG-19, h=256, e=64, 8 heads, attention from block 3, two modules, 224 px
    "paper": ExemplarConfig(backbone="vgg19", hidden=256, head_dim=64, heads=8, attention="axial",
                            attention_levels=3, modules_per_level=2, span=None, train_size=224),
    "paper-standard": ExemplarConfig(backbone="vgg19", hidden=256, head_dim=64, heads=8, attention="standard",
                                     attention_levels=3, modules_per_level=2, span=None, train_size=224),
}





def check_gate(name: str, g) -> None:
    """None, or ``[lo, hi]`` with ``0 <= lo < hi <= 1`` (a gate on an image's mean match confidence)."""
    if g is None:
        return
    if not isinstance(g, (list, tuple)) or len(g) != 2:
        raise ValueError(f"config {name!r} must be null or two numbers [lo, hi], not {g!r}")
    check_float(f"{name}[0]", g[0], 0.0, 1.0)
    check_float(f"{name}[1]", g[1], 0.0, 1.0)
    if not g[0] < g[1]:
        raise ValueError(f"config {name!r}: lo must be below hi, not {list(g)}")


#: the shipped default's settings over its weights' config (``exemplar``): its warp matched coarse to fine (as
#: it was trained) for a reference of the same scene, densely for a related one (``prior_cells_gate``), and its
#: output stage; chosen on training views with references from other sources (docs/MODELS.md, issue 18). Its
#: match confidence searches the finest level only in the cells the warp chooses (``confidence_cells``: the
#: dense stride-4 search was the confidence's costliest part, issue 21; docs/BENCHMARKS.md), with coefficients
#: fitted for that search (``python -m training.fit_confidence``) and the gates taken again from them by the
#: same rule (the 90th percentile of other-source views' mean confidence, the 10th of self). ``black_chroma``:
#: near-black pixels neutral in images whose reference is only related (issue 18's fifth step). ``palette_*``:
#: each region of such an image takes the reference's main colour its pixels vote for (issue 18's sixth step).
#: ``histogram_mix``: half of such an image's colour from the histogram network given the reference's histogram,
#: run at half the size (issue 18's seventh step); that network is ``histogram-companion``, fine-tuned for
#: the histograms of related photos (the eighth step)
EXEMPLAR_OUTPUT = {"prior_cells_gate": [0.47, 0.64], "coherence": 16, "coherence_gate": [0.47, 0.64],
                   "dark_chroma": 30.0, "black_chroma": 5.0, "confidence_cells": 16,
                   "confidence": {"bias": -5.28, "best2": 4.33, "best4": 1.69, "best5": 3.42},
                   "palette_modes": 6, "palette_radius": 16, "palette_share": 0.5, "palette_smooth": 8,
                   "palette_blur": 2.0, "histogram_mix": 0.5, "histogram_scale": 0.5,
                   "histogram_model": "histogram-companion"}


@dataclass
class HistogramConfig:
    """Architecture of a histogram network.

    ``channels``: C of ``F_T``/``F_R`` (64 in the paper); ``unet_width``: channels of
    the first U-Net level (doubling per level); ``unet_depth``: down-sampling steps;
    ``fu_channels``: when set, a 1x1 convolution projects ``F_U`` to this many channels
    before it is upsampled and given to the U-Net (our CPU deviation: the full-resolution
    U-Net input is then ``1 + fu_channels`` wide instead of ``1 + channels``); ``None``
    feeds ``F_U`` as the paper does.
    ``prior`` (our departure, off in the paper): the histogram itself joins Eq. 2 - the
    logarithm of every bin's mass is added to the attention logits and the values carry the
    bins' ab - so the attention gives every position an expected colour drawn from the given
    histogram; the U-Net sees it and predicts a change to it (zero at the start, when the
    output is close to the histogram's mean colour everywhere).
    ``coherence`` (output stage, ours; 0: off, up to 64): the radius, at the working size, of an
    edge-aware spreading of the output's colour with the target's lightness as the guide
    (:func:`~napari_colorize.models.coherence.spread`, every pixel weighing the same): colour agrees
    within regions of the grey image and changes at its edges, as the exemplar's region coherence.
    """

    backbone: str = "efficientnet_lite0"
    channels: int = 64
    unet_width: int = 32
    unet_depth: int = 3
    use_palette: bool = True
    fu_channels: int | None = None
    prior: bool = False
    coherence: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HistogramConfig":
        return _checked(cls, dict(d), "histogram")

    def validate(self) -> None:
        """Types and ranges, checked before anything is built (configs come from files)."""
        check_choice("backbone", self.backbone, BACKBONE_NAMES)
        check_int("channels", self.channels, 4, 512)
        check_int("unet_width", self.unet_width, 4, 64)
        check_int("unet_depth", self.unet_depth, 1, 4)
        check_choice("use_palette", self.use_palette, (True, False))
        check_int("fu_channels", self.fu_channels, 1, 512, allow_none=True)
        check_choice("prior", self.prior, (True, False))
        check_int("coherence", self.coherence, 0, 64)


#: the output stage of the shipped ``histogram`` (set over its weights' config by the registry, like
#: ``EXEMPLAR_OUTPUT``): region coherence of radius 4, chosen on training views (docs/MODELS.md, issue 18 item 6);
#: ``histogram-plain`` (paper B's network) has none
HISTOGRAM_OUTPUT = {"coherence": 4}

HISTOGRAM_CONFIGS = {
    "cpu": HistogramConfig(unet_width=16, fu_channels=16),
    "cpu-prior": HistogramConfig(unet_width=16, fu_channels=16, prior=True),
    "paper": HistogramConfig(backbone="vgg19", channels=64, unet_width=64, unet_depth=4),
}
