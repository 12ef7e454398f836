"""--mixed_precision=auto: bfloat16 exactly where the CPU's flags (or an Ampere+ GPU) compute it
natively, said in one line; old run folders' boolean setting still read; bad values refused."""
import json

import pytest
import tensorflow as tf

from tf_pgn import config, precision

pytestmark = pytest.mark.skipif(bool(tf.config.list_physical_devices('GPU')),
                                reason='a GPU decides auto, not the CPU flags tested here')


def _cpuinfo(tmp_path, flags):
  path = tmp_path / 'cpuinfo'
  path.write_text(f'processor\t: 0\nmodel name\t: x\nflags\t\t: fpu sse2 avx2 {flags}\n\n')
  return str(path)


@pytest.mark.parametrize('flags, policy, note', [
    ('avx512f amx_bf16 amx_tile avx512_bf16', 'mixed_bfloat16',
     'precision: bfloat16 compute, float32 variables (auto: this CPU (amx_bf16, avx512_bf16))'),
    ('avx512f avx512_bf16', 'mixed_bfloat16',
     'precision: bfloat16 compute, float32 variables (auto: this CPU (avx512_bf16))'),
    ('avx512f avx512_vnni', 'float32', 'precision: float32 (auto: no AVX512-BF16/AMX-BF16 CPU or '
     'Ampere+ GPU here, bfloat16 would be emulated)'),
])
def test_auto_is_bfloat16_exactly_where_the_cpu_computes_it(tmp_path, flags, policy, note):
  assert precision.resolve('auto', _cpuinfo(tmp_path, flags)) == (policy, note)


def test_the_explicit_settings_ignore_the_hardware_and_an_unreadable_cpuinfo_means_float32(
    tmp_path):
  no_bf16 = _cpuinfo(tmp_path, 'avx2')
  assert precision.resolve('bfloat16', no_bf16)[0] == 'mixed_bfloat16'
  assert precision.resolve('float32', _cpuinfo(tmp_path, 'amx_bf16'))[0] == 'float32'
  assert precision.resolve('auto', str(tmp_path / 'missing'))[0] == 'float32'
  with pytest.raises(ValueError, match="unknown precision 'fp8': use one of float32, bfloat16, "
                     'auto'):
    precision.resolve('fp8')


def test_an_old_run_folders_boolean_reads_as_its_precision_and_a_bad_value_is_one_line():
  base = json.loads(config.make_config('tiny').to_json())
  for old, new in ((True, 'bfloat16'), (False, 'float32')):
    assert config.TrainConfig.from_dict(dict(base, mixed_precision=old)).mixed_precision == new
  with pytest.raises(config.ConfigError, match=r'^unknown --mixed_precision=fp16: use one of '
                     r'float32, bfloat16, auto$'):
    config.make_config('tiny', mixed_precision='fp16')


def test_auto_is_the_default_where_a_run_is_trained_and_float32_where_numbers_are_compared():
  # bfloat16 trained level with float32 (docs/PRECISION.md): the presets a user trains with take
  # auto; the unit tests' preset, the studies' jobs (trained in float32) and a config.json
  # written before the setting existed stay float32.
  from tf_pgn.study import linf, sweeps  # pylint: disable=g-import-not-at-top
  assert config.make_config('paper').mixed_precision == 'auto'
  assert config.make_config('cpu').mixed_precision == 'auto'
  assert config.make_config('tiny').mixed_precision == 'float32'
  job = sweeps.sweep_jobs('table2', 'cpu')[0]
  assert job.train_config('cpu', 'cifar10').mixed_precision == 'float32'
  assert linf.LinfJob('pgn', 16, 1234).train_config('cpu', 'cifar10').mixed_precision == 'float32'
  old = json.loads(config.make_config('cpu').to_json())
  del old['mixed_precision']
  assert config.TrainConfig.from_dict(old).mixed_precision == 'float32'
