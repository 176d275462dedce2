"""``noisewise augment preview``: the PNG grid from the command line and its exit codes."""

from PIL import Image

from noisewise.cli import main


def test_writes_a_png_and_reports_a_bad_spec(tmp_path, capsys):
    out = tmp_path / "cli.png"
    code = main(["augment", "preview", "impulse_noise", "--dataset", "digits", "--preset",
                 "cifar", "--count", "2", "-o", str(out)])
    assert code == 0 and capsys.readouterr().out == f"{out}\n"
    with Image.open(out) as png:
        assert png.format == "PNG"
    assert main(["augment", "preview", "nonsense", "--dataset", "digits", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("noisewise augment preview: error: SPEC must be a corruption name")
    assert err.count("\n") == 1


def test_a_source_of_images_is_required(tmp_path, capsys):
    assert main(["augment", "preview", "contrast", "-o", str(tmp_path / "p.png")]) == 2
    assert "one of the arguments --image --dataset is required" in capsys.readouterr().err
    assert main(["augment", "preview", "contrast", "--dataset", "mnist"]) == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
