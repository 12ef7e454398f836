import json

from conftest import run_cli


def test_bench_writes_table_and_ratios(tmp_path):
  out = tmp_path / 'bench.json'
  proc = run_cli('-m', 'tf_pgn.bench', '--width=0.0625', '--batch_size=8', '--warmup=1',
                 '--repeats=1', '--defenses=naive,fgm,pgd10,pgn,pgn:bf16,pgn:through,'
                 'pgn:normalized_gen2', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert set(result['steps']) == {'naive', 'fgm', 'pgd10', 'pgn', 'pgn:bf16', 'pgn:through',
                                   'pgn:normalized_gen2'}
  assert all(r['images_per_second'] > 0 for r in result['steps'].values())
  assert result['pgn_over_fgm_time'] > 0 and result['pgd10_over_pgn_time'] > 0
  assert 0 < result['naive_step_fraction_of_matmul'] < 2
  assert result['pipeline_over_fastest_step'] > 0
  assert result['steps']['naive']['deepfool_images_per_second'] > 0
  assert result['steps']['naive']['cw_iterations_images_per_second'] > 0
  assert 'pgn' in proc.stdout and 'images/s' in proc.stdout and 'deepfool' in proc.stdout


def test_attack_bench_compares_apgd_with_pgd_and_fmn_with_cw(tmp_path):
  out = tmp_path / 'attack_bench.json'
  proc = run_cli('-m', 'tf_pgn.attack_bench', '--width=0.0625', '--num_examples=8',
                 '--iterations=10', '--repeats=1', '--fmn_steps=10', '--cw_iterations=10',
                 '--cw_search_steps=2', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  speed, minimal = result['apgd_vs_pgd'], result['fmn_vs_cw']
  assert speed['pgd']['iterations_images_per_second'] > 0 and speed['apgd_over_pgd_speed'] > 0
  assert 0 <= speed['apgd']['accuracy'] <= 1
  assert minimal['fmn']['model_calls_per_image'] == 10  # one per step
  assert 0 < minimal['cw']['model_calls_per_image'] <= 20  # at most iterations x search steps
  assert minimal['fmn_over_cw_model_calls'] >= 0.5
  assert 'APGD / PGD speed' in proc.stdout and 'FMN / C&W' in proc.stdout
