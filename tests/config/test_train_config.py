import pytest

from vqtune.config import TrainConfig, load_train_config
from vqtune.errors import ConfigError


def _write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_paper_cifar_setting():
    config = load_train_config()
    assert (config.model.hidden, config.model.residual_hidden, config.model.residual_blocks) == (128, 32, 2)
    assert (config.model.embedding_dim, config.model.codebook_size, config.quantizer.beta) == (64, 512, 0.25)
    assert config.data.source == "skimage-photos" and config.device == "auto"


def test_yaml_and_overrides(tmp_path):
    path = _write(tmp_path, "model:\n  codebook_size: 128\noptim:\n  lr: 1.0e-3\n")
    config = load_train_config(path, ["model.codebook_size=256", "data.resolution=[16, 32]", "quantizer.ema=false"])
    assert config.model.codebook_size == 256
    assert config.optim.lr == 1e-3
    assert config.data.size == (16, 32)
    assert config.quantizer.ema is False


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model:\n  codebok_size: 3\n", r"run.yaml: model.codebok_size: unknown key; valid keys here: codebook_size,"),
        ("nonsense: 1\n", r"run.yaml: nonsense: unknown key; valid keys here: data, device, model"),
        ("model:\n  codebook_size: 1\n", r"run.yaml: model.codebook_size: Input should be greater than or equal to 2 \(got 1\)"),
        ("model:\n  codebook_size: many\n", r"model.codebook_size: Input should be a valid integer"),
        ("optim:\n  epochs: 0\n", r"optim.epochs: Input should be greater than or equal to 1"),
        ("optim:\n  batch_size: -4\n", r"optim.batch_size: Input should be greater than or equal to 1"),
        ("data:\n  source: imagenet\n", r"data.source: Input should be 'skimage-photos', 'folder' or 'fashion-mnist'"),
        ("data:\n  resolution: 36\nmodel:\n  downsample: 3\n", r"data.resolution 36x36 is not divisible by 2\^model.downsample = 8"),
        ("device: tpu\n", r"device: expected auto, cpu, cuda or cuda:N"),
        ("model: [1, 2\n", r"run.yaml: line \d+ column \d+: malformed YAML"),
        ("- a\n- b\n", r"run.yaml: expected a mapping"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        load_train_config(_write(tmp_path, text))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.codebok_size=3", r"--set model.codebok_size: unknown key 'codebok_size' in model; valid keys: codebook_size,"),
        ("optim.lr.x=3", r"--set optim.lr.x: unknown key 'x' in optim.lr"),
        ("model.codebook_size", r"expected KEY=VALUE"),
        ("model.codebook_size=[1", r"--set model.codebook_size: cannot parse value"),
        ("optim.epochs=-1", r"--set: optim.epochs: Input should be greater than or equal to 1"),
    ],
)
def test_bad_overrides(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_train_config(None, [override])


def test_yaml_is_safe_loaded(tmp_path):
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_train_config(_write(tmp_path, "seed: !!python/object/apply:os.system ['true']\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: no such file"):
        load_train_config(tmp_path / "missing.yaml")


def test_schema_is_the_only_source_of_defaults():
    assert TrainConfig().model_dump() == load_train_config().model_dump()


def test_described_config_loads_back(tmp_path):
    from vqtune.config import describe

    config = load_train_config(None, ["data.source=fashion-mnist", "data.resolution=[16, 32]", "quantizer.eps=1e-6",
                                      "data.path=/tmp/x"])
    text = describe(config)
    assert "# D: size of each code vector." in text  # the schema's own words
    path = tmp_path / "described.yaml"
    path.write_text(text)
    assert load_train_config(path) == config
