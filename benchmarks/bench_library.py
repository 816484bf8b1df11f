"""Library benchmarks: prints Markdown tables (copied into docs/BENCHMARKS.md).

    python benchmarks/bench_library.py            # everything (about 10 minutes on 2 cores)
    python benchmarks/bench_library.py call       # one section: call | related | cli | forward | large | reference | attention | stack | temporal | warp
    python benchmarks/bench_library.py call --with runs/I.safetensors   # more models (or checkpoints) in 'call'
    python benchmarks/bench_library.py call --paper-code ../xcnet       # + paper A's public code, same run
                                               # (3 rounds, ours then paper A's in each; --rounds N)

Every measurement that needs its own peak memory runs in a fresh subprocess
(peak resident set size from ``resource.getrusage``). Threads: 2.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap

THREADS = int(os.environ.get("BENCH_THREADS", "2"))  # (BENCH_THREADS=1: what a busy machine's automatic choice gives)


def _run(code: str, timeout: int = 1800) -> dict:
    """Run python code in a fresh process; it prints one JSON line; add its peak RSS."""
    prelude = textwrap.dedent(f"""
        import json, os, resource, sys, time
        os.environ["OMP_NUM_THREADS"] = "{THREADS}"
        import numpy as np, torch
        torch.set_num_threads({THREADS})
        def _peak_mb():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        def _median_ms(f, repeats=20):
            f()  # (warm-up)
            ts = []
            for _ in range(repeats):
                t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
            return 1000 * float(np.median(ts))
    """)
    r = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def forward() -> None:
    print("\n### Exemplar forward pass, one 224 x 224 target/reference pair, CPU, 2 threads\n")
    print("| model | config | median ms | min ms |")
    print("|---|---|---:|---:|")
    for name in ["exemplar", "exemplar-standard", "exemplar-single", "histogram"]:
        r = _run(f"""
            from napari_colorize.bench import bench_forward
            print(json.dumps(bench_forward({name!r}, sizes=[224], repeats=30, threads={THREADS})[0]))
        """)
        cfg = "axial, 2 modules" if name == "exemplar" else name.split("-")[-1]
        print(f"| {name} | {cfg} | {r.get('median_ms', float('nan')):.1f} | {r.get('min_ms', float('nan')):.1f} |")


PAPER_CODE = """
    import torchvision.models as tvm
    _vgg19 = tvm.vgg19
    tvm.vgg19 = lambda pretrained=False, progress=True, **kw: _vgg19(weights=None)  # (random weights: no download)
    sys.path.insert(0, os.path.join({path!r}, "src"))
    from models.xcnet import xcnet
    net = xcnet().eval()
    g = torch.Generator().manual_seed(0)
    tgt, ref = torch.rand(1, 3, 224, 224, generator=g), torch.rand(1, 3, 224, 224, generator=g)
    with torch.inference_mode():
        print(json.dumps({{"paper": _median_ms(lambda: net(tgt, ref), 5)}}))
"""


def paper_forward_ms(path: str) -> float:
    """Paper A's public network (a work tree of https://github.com/bbc/xcnet at ``path``: GPL-3.0, read and
    run beside ours, never copied into this repository), one 224 x 224 pair with random weights of the
    same shapes (its VGG-19 weights are downloaded at run time, which these machines cannot), median ms."""
    r = _run(PAPER_CODE.format(path=os.path.abspath(path)))
    if "error" in r:
        raise SystemExit(f"paper A's code at {path}: {r['error']}")
    return r["paper"]


CALL_CODE = """
    import napari_colorize as nc
    from napari_colorize._sample_data import sample_pair
    from napari_colorize.guide_cache import GUIDE_CACHE
    from skimage.transform import resize
    grey, ref, _ = sample_pair()
    grey = (resize(grey, (224, 224)) * 255).astype(np.uint8)
    ref = (resize(ref, (224, 224)) * 255).astype(np.uint8)
    nc.keep_freed_memory()  # (as the command line and the widgets run it: allocator.py)
    m = nc.load_model({name!r}, device="cpu")
    L = torch.from_numpy(grey.astype(np.float32) / 127.5 - 1)[None, None]
    R = torch.from_numpy(ref.astype(np.float32) / 255).permute(2, 0, 1)[None]
    kind = m.kind
    def net():
        with torch.inference_mode():
            if kind == "exemplar":
                m.network(L, R)
            else:
                m.network(L, torch.from_numpy(nc.histogram_from_rgb(ref)).float()[None])
    guide = {{"reference": ref}} if kind == "exemplar" else {{"histogram": nc.histogram_from_rgb(ref)}}
    call = lambda: nc.colorize(m, grey, **guide)
    def first():
        GUIDE_CACHE.clear()
        return call()
    for f in (net, call, first, net, call, first):
        f()
    tn, tc, tf = [], [], []
    for _ in range(25):  # interleaved, so that all see the same machine state
        t = time.perf_counter(); net(); tn.append(time.perf_counter() - t)
        t = time.perf_counter(); call(); tc.append(time.perf_counter() - t)
        GUIDE_CACHE.clear()
        t = time.perf_counter(); call(); tf.append(time.perf_counter() - t)
    print(json.dumps({{"net": 1000 * float(np.median(tn)), "call": 1000 * float(np.median(tc)),
                       "first": 1000 * float(np.median(tf))}}))
"""


def call(extra: tuple[str, ...] = (), paper_code: str | None = None, rounds: int | None = None) -> None:
    """Our call and forward (each model in a fresh process), and with ``paper_code`` paper A's forward, in
    ``rounds`` rounds (default 3 with paper A's code, else 1): ours then paper A's in each, so that a ratio
    compares the two at the same minute (this machine's speed drifts by up to half from one minute to the
    next, docs/BENCHMARKS.md) and the median over the rounds is reported."""
    rounds = rounds or (3 if paper_code else 1)
    print("\n### The whole colorize() call against the network forward, one 224 x 224 pair, same process\n")
    print("colorize(): again with the same reference (its features kept by the engine's guide cache: the "
          "widgets' re-runs, a batch with one reference); first: a new reference each time (the cache emptied "
          "before the call). The network forward encodes target and reference in one pass. The C allocator keeps "
          "freed memory (`nc.keep_freed_memory()`, as the command line and the widgets set it)."
          + (f" {rounds} rounds, each ours then paper A's public code, every one in a fresh process." if paper_code
             else "") + "\n")
    print("| round | model | network forward ms (median) | colorize() ms (median) | ratio (target <= 1.3) | "
          "colorize(), first with this reference, ms |" + (" paper A's forward, ms | paper A / our call again "
                                                            "(target >= 33) | paper A / our first call |" if paper_code else ""))
    print("|---:|---|---:|---:|---:|---:|" + ("---:|---:|---:|" if paper_code else ""))
    ratios: dict[str, list[tuple[float, float]]] = {}
    for k in range(1, rounds + 1):
        ours = {name: _run(CALL_CODE.format(name=name)) for name in ["exemplar", "histogram", *extra]}
        paper = paper_forward_ms(paper_code) if paper_code else None  # (after ours, in the same round)
        for name, r in ours.items():
            if "error" in r:
                print(f"| {k} | {name} | error: {r['error']} | | | |" + (" | | |" if paper_code else ""))
                continue
            row = f"| {k} | {name} | {r['net']:.1f} | {r['call']:.1f} | {r['call'] / r['net']:.2f} | {r['first']:.1f} |"
            if paper:
                ratios.setdefault(name, []).append((paper / r["call"], paper / r["first"]))
                row += f" {paper:.0f} | {paper / r['call']:.1f}x | {paper / r['first']:.1f}x |"
            print(row)
    if ratios:
        print(f"\nPaper A's public code (bbc/xcnet, VGG-19, random weights): its network forward per pair, timed "
              f"in each round after ours. Median over the {rounds} rounds of each round's ratio:\n")
        print("| model | paper A's forward / our call again with the reference (target >= 33) | "
              "... / our first call with a new reference |")
        print("|---|---:|---:|")
        for name, rs in ratios.items():
            print(f"| {name} | {statistics.median(r[0] for r in rs):.1f}x | {statistics.median(r[1] for r in rs):.1f}x |")


RELATED_CODE = """
    import napari_colorize as nc
    from napari_colorize._sample_data import sample_pair
    from napari_colorize.models.configs import ExemplarConfig
    from skimage import data
    from skimage.transform import resize
    grey = (resize(sample_pair()[0], (224, 224)) * 255).astype(np.uint8)
    ref = (resize(data.coffee(), (224, 224)) * 255).astype(np.uint8)  # (another photo: the gate opens)
    nc.keep_freed_memory()
    def load(**over):  # (one model per setting, its config fixed, as a user calls it)
        model = nc.load_model("exemplar", device="cpu")
        model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(), **over})
        if over.get("histogram_model") == "histogram":  # (the seventh step: the default histogram network)
            model.companion = nc.load_model("histogram", device="cpu")
        return model
    runs = {"no_vote": load(histogram_mix=0.0, palette_modes=0), "no_mix": load(histogram_mix=0.0),
            "seventh": load(histogram_model="histogram"), "shipped": load()}
    def call(model):
        return nc.colorize(model, grey, reference=ref)
    conf = float(call(runs["shipped"]).confidence.mean())
    for _ in range(2):
        for model in runs.values():
            call(model)
    ts = {k: [] for k in runs}
    for _ in range(30):  # interleaved, so that all see the same machine state
        for k, model in runs.items():
            t = time.perf_counter(); call(model); ts[k].append(time.perf_counter() - t)
    print(json.dumps({"conf": conf, **{k: 1000 * float(np.median(v)) for k, v in ts.items()}}))
"""


def related() -> None:
    """The shipped exemplar's output stage with a reference that is only related (the call benchmark's
    bundled pair is of the same scene, where the stage is not computed): the call again with the reference,
    without the palette vote (issue 18's sixth step), without the histogram network's share (its seventh), with
    the default histogram network mixed in (the seventh step) and as shipped (``histogram-companion``)."""
    print("\n### colorize() with a related reference: the palette vote's and the histogram mix's cost (224 x 224, "
          "call again with the reference)\n")
    r = _run(RELATED_CODE)
    if "error" in r:
        print(f"error: {r['error']}")
        return
    from napari_colorize.models.configs import EXEMPLAR_OUTPUT

    lo = EXEMPLAR_OUTPUT["coherence_gate"][0]
    print(f"| mean match confidence (the stage applies in full below {lo:g}) | palette_modes 0, histogram_mix 0, ms "
          "(median of 30) | histogram_mix 0, ms | mixing in histogram (the seventh step), ms | shipped "
          "(histogram-companion), ms | the mix's cost, ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {r['conf']:.2f} | {r['no_vote']:.1f} | {r['no_mix']:.1f} | {r['seventh']:.1f} | {r['shipped']:.1f} | "
          f"{r['shipped'] - r['no_mix']:+.1f} |")


def cli() -> None:
    print("\n### Command line start-up\n")
    print("| command | seconds (median of 5, fresh process each) |")
    print("|---|---:|")
    import time

    for args in (["models"], ["--help"]):
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "napari_colorize.cli", *args], capture_output=True, check=True)
            ts.append(time.perf_counter() - t)
        print(f"| napari-colorize {' '.join(args)} | {sorted(ts)[2]:.2f} |")
    plan_many()


def plan_many(n: int = 2000) -> None:
    """The command line's checks before any work (every output against every input, the confidence files
    against both) for ``n`` small targets, timed as a user meets them: a command refused after all the checks
    (one confidence file exists already), start-up included. A check per pair grew with the square of ``n``."""
    import tempfile
    import time

    import numpy as np
    from PIL import Image

    print(f"\n| checks before work, {n} targets, -o and --confidence folders (refused at the end) | seconds |")
    print("|---|---:|")
    with tempfile.TemporaryDirectory() as d:
        grey = Image.fromarray(np.zeros((8, 8), np.uint8))
        files = [f"{d}/t{i:05d}.png" for i in range(n)]
        for f in files:
            grey.save(f)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(f"{d}/ref.png")
        os.makedirs(f"{d}/conf")
        grey.save(f"{d}/conf/t{n - 1:05d}_confidence.png")  # (the last one's file exists: refused, nothing run)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "napari_colorize.cli", "colorize", *files, "-r", f"{d}/ref.png",
                               "-o", f"{d}/out/", "--confidence", f"{d}/conf/"], capture_output=True, text=True)
        seconds = time.perf_counter() - t
        assert done.returncode != 0 and "exists" in done.stderr and not os.path.exists(f"{d}/out/t00000_colour.png")
        print(f"| {n} targets, checked and refused | {seconds:.2f} |")


#: code that builds the 4096 x 4096 uint16 target ``img`` (in bands: the peak is colorize()'s, not this loop's)
TARGET_4096 = """img = np.empty((4096, 4096), np.uint16)
xx = np.arange(4096)[None, :]
for r0 in range(0, 4096, 256):
    yy = np.arange(r0, r0 + 256)[:, None]
    img[r0:r0 + 256] = (np.sin(xx / 150.0) * np.cos(yy / 97.0) + 1) * 20000 + rng.integers(0, 3000, (256, 4096))
""".replace("\n", "\n            ")


def large() -> None:
    print("\n### A 4096 x 4096 uint16 target (colourise() end to end, default working size)\n")
    print("| model | seconds | peak memory (process, MB) | working size |")
    print("|---|---:|---:|---|")
    for name in ["exemplar", "histogram", "welsh"]:
        r = _run(f"""
            import napari_colorize as nc
            rng = np.random.default_rng(0)
            {TARGET_4096}
            ref = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
            ref[..., 0] = np.linspace(0, 255, 256)[None, :].astype(np.uint8)
            m = nc.load_model({name!r}, device="cpu", pretrained={name == 'welsh'})
            t = time.perf_counter()
            res = nc.colorize(m, img, reference=ref, return_attention=False)
            dt = time.perf_counter() - t
            print(json.dumps({{"s": dt, "peak": _peak_mb(), "work": list(res.working_shape)}}))
        """)
        if "error" in r:
            print(f"| {name} | error: {r['error']} | | |")
        else:
            print(f"| {name} | {r['s']:.1f} | {r['peak']:.0f} | {r['work'][0]} x {r['work'][1]} |")
    print("\n(exemplar and histogram: randomly initialised weights, same architecture and cost as trained ones.)")


def reference() -> None:
    """Peak memory of a 4096 x 4096 uint16 target with references of growing size (exemplar): the
    reference is needed at the working size only."""
    print("\n### A 4096 x 4096 uint16 target with a large reference (exemplar, colourise() end to end)\n")
    print("| reference | reference MB (uint8) | seconds | peak memory (process, MB) | added by the reference, MB |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for side in (256, 6400, 8192):
        r = _run(f"""
            import napari_colorize as nc
            rng = np.random.default_rng(0)
            {TARGET_4096}
            n = {side}
            ref = np.empty((n, n, 3), np.uint8)
            cx = np.arange(n)[None, :]
            for r0 in range(0, n, 256):
                cy = np.arange(r0, min(n, r0 + 256))[:, None]
                ref[r0:r0 + 256, :, 0] = (cx * 255 // n).astype(np.uint8)
                ref[r0:r0 + 256, :, 1] = (cy * 255 // n).astype(np.uint8)
                ref[r0:r0 + 256, :, 2] = ((cx + cy) % 256).astype(np.uint8)
            m = nc.load_model("exemplar", device="cpu", pretrained=False)
            t = time.perf_counter()
            res = nc.colorize(m, img, reference=ref, return_attention=False)
            dt = time.perf_counter() - t
            print(json.dumps({{"s": dt, "peak": _peak_mb()}}))
        """)
        if "error" in r:
            print(f"| {side} x {side} | | error: {r['error']} | | |")
            continue
        base = r["peak"] if base is None else base
        print(f"| {side} x {side} | {side * side * 3 / 2**20:.0f} | {r['s']:.1f} | {r['peak']:.0f} | "
              f"{r['peak'] - base:.0f} |")


def attention() -> None:
    print("\n### Axial vs standard attention: exemplar network forward at growing sizes\n")
    print("Default CPU configuration (attention at the two coarsest levels, strides 16 and 32), random weights.\n")
    print("| size px | axial ms | axial peak MB | standard ms | standard peak MB |")
    print("|---:|---:|---:|---:|---:|")
    for size in [224, 512, 1024, 2048]:
        cells = []
        for name in ["exemplar", "exemplar-standard"]:
            # standard attention logits: heads x (HW)^2 floats at stride 16; skip what cannot fit in 20 GB
            n16 = (size // 16) ** 2
            need_gb = 4 * n16 * n16 * 4 * 4 / 1e9
            if name == "exemplar-standard" and need_gb > 20:
                cells += [f"not run (needs ~{need_gb:.0f} GB)", ""]
                continue
            r = _run(f"""
                import napari_colorize as nc
                m = nc.load_model({name!r}, device="cpu", pretrained=False)
                L = torch.rand(1, 1, {size}, {size}) * 2 - 1; R = torch.rand(1, 3, {size}, {size})
                ts = []
                with torch.inference_mode():
                    m.network(L, R)
                    for _ in range(3 if {size} <= 512 else 1):
                        t = time.perf_counter(); m.network(L, R); ts.append(time.perf_counter() - t)
                print(json.dumps({{"ms": 1000 * float(np.median(ts)), "peak": _peak_mb()}}))
            """)
            cells += ([f"error: {r['error']}", ""] if "error" in r else [f"{r['ms']:.0f}", f"{r['peak']:.0f}"])
        print(f"| {size} | " + " | ".join(cells) + " |")


def stack() -> None:
    print("\n### A stack of 100 slices of 512 x 512 with one reference\n")
    print("| model | seconds per slice (features cached) | seconds per slice (reference re-encoded) |")
    print("|---|---:|---:|")
    for name in ["exemplar"]:
        r = _run(f"""
            import napari_colorize as nc
            rng = np.random.default_rng(0)
            stack = rng.integers(0, 4000, (100, 512, 512)).astype(np.uint16)
            ref = (rng.random((300, 300, 3)) * 255).astype(np.uint8)
            m = nc.load_model({name!r}, device="cpu", pretrained=False)
            t = time.perf_counter(); nc.colorize(m, stack, reference=ref, return_attention=False)
            cached = (time.perf_counter() - t) / 100
            t = time.perf_counter()
            for i in range(10):
                nc.colorize(m, stack[i], reference=ref, return_attention=False)
            uncached = (time.perf_counter() - t) / 10
            print(json.dumps({{"cached": cached, "uncached": uncached}}))
        """)
        print(f"| {name} | {r.get('cached', float('nan')):.3f} | {r.get('uncached', float('nan')):.3f} |")
    temporal()


def temporal(repeats: int = 2) -> None:
    """The flicker control's cost: a 100 x 512 x 512 uint16 stack that drifts 1.5 px per slice, with
    ``temporal=0`` and the default (``temporal=3``), interleaved ``repeats`` times in one process (the
    fastest of each is printed, with the machine's load at the end)."""
    print("\n### Flicker control: a 100 x 512 x 512 uint16 stack (drifting 1.5 px per slice), one reference\n")
    print("| model | temporal=0 s | default (temporal=3) s | ratio (target <= 1.5) | load (1 min) |")
    print("|---|---:|---:|---:|---:|")
    for name in ["exemplar"]:
        r = _run(f"""
            import napari_colorize as nc
            print(nc.__file__, file=sys.stderr)
            rng = np.random.default_rng(0)
            yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
            stack = np.empty((100, 512, 512), np.uint16)
            for t in range(100):  # a textured field panned 1.5 px per slice, with noise
                x = xx + 1.5 * t
                f = np.sin(x / 23.0) * np.cos(yy / 31.0) + 0.5 * np.sin((x + yy) / 11.0)
                stack[t] = (f + 2) * 800 + rng.integers(0, 300, (512, 512))
            ref = (rng.random((300, 300, 3)) * 255).astype(np.uint8)
            ref[..., 0] = np.linspace(0, 255, 300)[None, :].astype(np.uint8)
            m = nc.load_model({name!r}, device="cpu")
            times = {{0: [], None: []}}
            for _ in range({repeats}):
                for k in (0, None):
                    t = time.perf_counter(); nc.colorize(m, stack, reference=ref, temporal=k, return_attention=False)
                    times[k].append(time.perf_counter() - t)
            print(json.dumps({{"off": min(times[0]), "on": min(times[None]), "load": os.getloadavg()[0]}}))
        """)
        if "error" in r:
            print(f"| {name} | error: {r['error']} | | | |")
        else:
            print(f"| {name} | {r['off']:.1f} | {r['on']:.1f} | {r['on'] / r['off']:.2f} | {r['load']:.1f} |")


def warp() -> None:
    print("\n### The warp's softmax, one block of 2048 x 3136 logits (224 px, stride 4), median ms\n")
    print("| temperature | softmax | in place, floored at max - 30 (inference) |")
    print("|---:|---:|---:|")
    for tau in (0.024, 0.0048):  # run I's learned temperature; the shipped default's
        r = _run(f"""
            from napari_colorize.models.coherence import centre_normalise
            from napari_colorize.models.warp import softmax_rows
            g = torch.Generator().manual_seed(0)
            q, k = (centre_normalise(torch.randn(1, 24, 56, 56, generator=g)) for _ in range(2))
            sim = torch.bmm(q[:, :2048], k.transpose(1, 2))
            best = sim.amax(-1, keepdim=True)
            plain = lambda: (sim / {tau}).softmax(-1)
            fast = lambda: softmax_rows(sim.clone(), best, {tau})
            print(json.dumps({{"plain": _median_ms(plain), "fast": _median_ms(fast)}}))
        """)
        print(f"| {tau} | {r.get('plain', float('nan')):.1f} | {r.get('fast', float('nan')):.1f} |")
    print("\n### The best similarity of every stride-4 position (3136 x 3136, 224 px), median ms\n")
    r = _run("""
        from napari_colorize.models.coherence import best_similarities, centre_normalise, query_block
        g = torch.Generator().manual_seed(0)
        taps = [None, torch.randn(1, 24, 56, 56, generator=g)]
        keys = {2: centre_normalise(torch.randn(1, 24, 56, 56, generator=g))}
        whole = lambda: best_similarities(taps, keys, (2,), block=4096)
        blocks = lambda: best_similarities(taps, keys, (2,))
        print(json.dumps({"whole": _median_ms(whole), "blocks": _median_ms(blocks), "rows": query_block(3136)}))
    """)
    print("| the whole matrix at once | in blocks of query rows (`coherence.query_block`) |")
    print("|---:|---:|")
    print(f"| {r.get('whole', float('nan')):.1f} | {r.get('blocks', float('nan')):.1f} ({r.get('rows', '?')} rows) |")
    print("\n### The exemplar output's guided filter (window 5), one 224 x 224 image, median ms\n")
    r = _run("""
        from kornia.filters import guided_blur
        from napari_colorize.models.exemplar import guided_filter
        g = torch.Generator().manual_seed(0)
        L, ab = torch.rand(1, 1, 224, 224, generator=g) * 2 - 1, torch.rand(1, 2, 224, 224, generator=g) - 0.5
        with torch.inference_mode():
            import napari_colorize.models.exemplar as ex
            ours = _median_ms(lambda: guided_filter(L, ab, 5, 1e-3), 30)
            box = ex.box_mean
            ex.box_mean = lambda t, r: torch.nn.functional.avg_pool2d(
                torch.nn.functional.pad(t, (r, r, r, r), mode="reflect"), 2 * r + 1, stride=1)
            pool = _median_ms(lambda: guided_filter(L, ab, 5, 1e-3), 30)
            ex.box_mean = box
            print(json.dumps({"ours": ours, "pool": pool,
                              "kornia": _median_ms(lambda: guided_blur(L, ab, 5, 1e-3), 30)}))
    """)
    print("| `models/exemplar.py: guided_filter` (box means by shifted sums) | the same with torch's `avg_pool2d` "
          "| kornia `guided_blur` (the same output) |")
    print("|---:|---:|---:|")
    print(f"| {r.get('ours', float('nan')):.1f} | {r.get('pool', float('nan')):.1f} | {r.get('kornia', float('nan')):.1f} |")


SECTIONS = {"call": call, "related": related, "cli": cli, "forward": forward, "large": large, "attention": attention, "stack": stack,
            "temporal": temporal, "reference": reference, "warp": warp}

if __name__ == "__main__":
    import platform

    import torch

    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        raise SystemExit(0)
    paper_code = None
    if "--paper-code" in args:
        i = args.index("--paper-code")
        paper_code = args[i + 1]
        args = args[:i] + args[i + 2:]
    rounds = None
    if "--rounds" in args:
        i = args.index("--rounds")
        rounds = int(args[i + 1])
        args = args[:i] + args[i + 2:]
    extra = tuple(args[args.index("--with") + 1:]) if "--with" in args else ()
    chosen = args[:args.index("--with")] if "--with" in args else args
    unknown = [a for a in chosen if a not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}: choose from {', '.join(SECTIONS)} (see --help)")
    chosen = chosen or list(SECTIONS)
    print(f"<!-- python benchmarks/bench_library.py {' '.join(sys.argv[1:])} -->")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{THREADS} threads.")
    for c in chosen:
        SECTIONS[c](extra, paper_code, rounds) if c == "call" else SECTIONS[c]()
