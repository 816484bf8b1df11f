"""The widgets' background jobs: typed messages, one slice collector, a model cache that notices new weights."""
import os

import numpy as np

from napari_colorize._widgets import _workers
from napari_colorize._widgets._workers import Colourised, ModelCache, Progress, collect_slices


def test_collect_slices_yields_progress_and_returns_the_stack():
    import torch

    from napari_colorize.models.base import Prediction

    preds = [Prediction(ab=torch.zeros(1, 2, 2, 2), confidence=torch.full((1, 1, 2, 2), 0.25 * i)) for i in range(3)]

    def slices():
        for i in range(3):
            yield (i,), np.full((4, 5, 3), i, np.float32), preds[i], {"stack_shape": (3,), "done": i + 1,
                                                                       "n_slices": 3}

    gen = collect_slices(slices())
    msgs = []
    try:
        while True:
            msgs.append(next(gen))
    except StopIteration as stop:
        stack = stop.value
    assert msgs == [Progress(1, 3, "slice 1 of 3"), Progress(2, 3, "slice 2 of 3"), Progress(3, 3, "slice 3 of 3")]
    assert stack.rgb.shape == (3, 4, 5, 3) and stack.rgb[2].max() == 2 and stack.pred is preds[2]
    assert stack.info["done"] == 3
    # the confidence at full size, per slice
    assert stack.confidence.shape == (3, 4, 5) and np.allclose(stack.confidence[2], 0.5)


def test_model_cache_reloads_a_retrained_checkpoint(tmp_path, monkeypatch):
    loads = []
    monkeypatch.setattr(_workers, "load_model", lambda name, device: loads.append(name) or object())
    ckpt = tmp_path / "mine.safetensors"
    ckpt.write_bytes(b"first")
    cache = ModelCache()
    a = cache.get(str(ckpt), "cpu")
    assert cache.get(str(ckpt), "cpu") is a and len(loads) == 1  # cached
    ckpt.write_bytes(b"retrained!")  # same path, new weights
    os.utime(ckpt, ns=(1, 1))  # even with an old modification time: the size differs
    b = cache.get(str(ckpt), "cpu")
    assert b is not a and len(loads) == 2 and len(cache) == 1  # the stale model is dropped
    assert cache.get(str(ckpt), "cuda") is not b and len(loads) == 3  # devices are separate


def test_a_registry_name_is_keyed_on_its_weights_file():
    from napari_colorize.models.registry import model_info

    key = ModelCache.key("exemplar", "cpu")
    assert key[2] == str(model_info("exemplar").weights_path.resolve()) and key[3] is not None
    assert ModelCache.key("welsh", "cpu")[2] is None  # a baseline has no file


def test_colorize_job_returns_a_typed_result(qtbot, small_pair):
    grey, ref, _ = small_pair
    worker = _workers.colorize_job("welsh", "cpu", np.stack([grey[:32, :32]] * 2), reference=ref, size=32)
    seen = []
    worker.yielded.connect(seen.append)
    with qtbot.waitSignal(worker.returned, timeout=60000) as blocker:
        worker.start()
    res = blocker.args[0]
    assert isinstance(res, Colourised) and res.is_stack and res.rgb.shape == (2, 32, 32, 3)
    assert res.model == "welsh" and res.attention == {} and seen[-1] == Progress(2, 2, "slice 2 of 2")


def test_job_runner_holds_the_buttons_and_shows_progress_until_the_end(qtbot):
    from magicgui.widgets import Label, ProgressBar, PushButton
    from napari.qt.threading import thread_worker

    from napari_colorize._widgets._jobs import JobRunner

    @thread_worker
    def job():
        yield Progress(1, 2, "half")
        yield Progress(2, 2, "all")
        return 5

    run, cancel = PushButton(text="Run"), PushButton(text="Cancel", enabled=False)
    bar, status = ProgressBar(value=0, min=0, max=1), Label(value="")
    runner = JobRunner([run], cancel, bar, status)
    got, ended = [], []
    runner.start(job(), "job failed", text="running...", returned=got.append,
                 finished=lambda: ended.append(run.enabled))
    assert runner.busy and not run.enabled and cancel.enabled and status.value == "running..."
    qtbot.waitUntil(lambda: runner.worker is None, timeout=60000)
    assert got == [5] and ended == [True]  # the widget's own end runs after the buttons are given back
    assert run.enabled and not cancel.enabled and (bar.value, bar.max) == (2, 2) and status.value == "all"


def test_a_job_that_ends_after_its_widget_was_closed_is_quiet(qtbot):
    """The widget closed (Qt deleted its controls) while its job ran: the job's end, cancelled, shows nothing
    and raises nothing (it was a teardown error of the colour-points preview)."""
    import time

    from magicgui.widgets import Label, PushButton
    from napari.qt.threading import thread_worker

    from napari_colorize._widgets._jobs import JobRunner

    @thread_worker
    def job():
        for _ in range(50):
            time.sleep(0.02)
            yield Progress(0, 1, "working")

    run, status = PushButton(text="Run"), Label(value="")
    runner = JobRunner([run], status=status)
    runner.start(job(), "job failed")
    run.native.deleteLater(), status.native.deleteLater()
    qtbot.wait(50)  # (the Qt objects are gone now; their Python wrappers remain)
    runner.cancel()
    qtbot.waitUntil(lambda: runner.worker is None, timeout=60000)


def test_job_runner_reports_a_failure(qtbot, monkeypatch):
    from magicgui.widgets import Label
    from napari.qt.threading import thread_worker

    from napari_colorize._widgets import _jobs

    @thread_worker
    def job():
        yield Progress(0, 1, "")
        raise ValueError("boom")  # (a RuntimeError is taken by superqt for a deleted worker)

    said = []
    monkeypatch.setattr(_jobs, "show_error", said.append)
    runner = _jobs.JobRunner(status=Label(value=""))
    with qtbot.capture_exceptions():  # (napari's worker also raises the error in the event loop)
        runner.start(job(), "job failed", error_status=True)
        qtbot.waitUntil(lambda: runner.worker is None, timeout=60000)
    assert said == ["job failed: boom"] and runner.status.value == "error: boom"


def test_a_jobs_runtime_error_is_reported_and_its_cancel_is_not(qtbot, monkeypatch):
    """superqt takes a RuntimeError out of a generator worker for a deleted worker and drops it (no error, no
    end: the widget would stay busy); a job made with ``_workers.job`` reports it once and ends. The library's
    Cancelled (a RuntimeError too) ends the job without a failure."""
    from magicgui.widgets import Label

    from napari_colorize._widgets import _jobs
    from napari_colorize.inference import Cancelled

    @_workers.job
    def fails(exc):
        yield Progress(0, 1, "")
        raise exc

    said = []
    monkeypatch.setattr(_jobs, "show_error", said.append)
    runner = _jobs.JobRunner(status=Label(value=""))
    runner.start(fails(RuntimeError("not enough memory")), "job failed", error_status=True)
    qtbot.waitUntil(lambda: runner.worker is None, timeout=60000)
    assert said == ["job failed: not enough memory"] and runner.status.value == "error: not enough memory"
    said.clear()
    runner.start(fails(Cancelled("stopped")), "job failed", error_status=True)
    qtbot.waitUntil(lambda: runner.worker is None, timeout=60000)
    assert said == []


def test_model_picker_offers_the_registry_models_and_a_checkpoint(tmp_path):
    from napari_colorize._widgets._picker import CHECKPOINT, WORKING_SIZE, ModelPicker, default_model, model_names

    p = ModelPicker(("exemplar", "hints"))
    assert list(p.model.choices) == model_names("exemplar", "hints") + [CHECKPOINT]
    assert p.model.value == default_model("exemplar") and p.name() == p.model.value
    assert p.size.value == WORKING_SIZE and p.device.value == "auto"
    p.model.value = CHECKPOINT
    assert p.name() is None  # no file chosen yet
    p.set(str(tmp_path / "mine.safetensors"))
    assert p.model.value == CHECKPOINT and p.name() == str(tmp_path / "mine.safetensors")
    p.set("welsh")
    assert p.name() == "welsh"
