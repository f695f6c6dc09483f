"""gml fit: one progress line over the whole run, with an ETA (Lightning's bar counts the
batches of one epoch)."""

from __future__ import annotations

import re

from .conftest import fit_tiny


def test_fit_shows_one_line_over_all_epochs(noise_manifest, tmp_path, capsys):
    fit_tiny(noise_manifest, tmp_path, "--trainer.enable_progress_bar", "true",
             "--trainer.max_epochs", "2")  # fmt: skip
    err = capsys.readouterr().err
    # one total over both epochs (the same number of steps in each), reached at the end
    states = re.findall(r"gml fit:\s+(\d+)%\|[^|]*\| (\d+)/(\d+) \[[^\]]*epoch (\d)/2\]", err)
    assert states, err[-2000:]
    (total,) = {int(t) for _, _, t, _ in states}
    assert total % 2 == 0 and total >= 2
    assert states[-1] == ("100", str(total), str(total), "2")
    first_epoch = [int(d) for _, d, _, e in states if e == "1"]
    assert first_epoch and max(first_epoch) <= total // 2 < total
    assert [int(d) for _, d, _, _ in states] == sorted(int(d) for _, d, _, _ in states)
    # tqdm's ETA: elapsed<remaining
    assert re.search(rf"gml fit:.*\| \d+/{total} \[\d\d:\d\d<\d\d:\d\d", err)


def test_no_line_without_a_progress_bar(noise_manifest, tmp_path, capsys):
    fit_tiny(noise_manifest, tmp_path)  # --trainer.enable_progress_bar false
    assert "gml fit:" not in capsys.readouterr().err


def test_a_resumed_run_counts_on_from_its_step(noise_manifest, tmp_path, capsys):
    from gml.cli import main

    run = fit_tiny(noise_manifest, tmp_path)  # one epoch, no bar
    capsys.readouterr()
    main(["fit", "--resume", str(run), "--trainer.max_epochs", "2",
          "--trainer.enable_progress_bar", "true"])  # fmt: skip
    err = capsys.readouterr().err
    states = re.findall(r"gml fit:\s+(\d+)%\|[^|]*\| (\d+)/(\d+) ", err)
    assert states, err[-2000:]
    total = int(states[0][2])
    assert int(states[0][1]) == total // 2  # the first epoch's steps are done already
    assert states[-1][:2] == ("100", str(total))
