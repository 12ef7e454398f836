"""CIFAR readers (official layout, restricted unpickler, checks) and the tf.data pipelines."""
import hashlib
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from conftest import cifar100_dict, provide_cifar10, write_cifar100
from tf_pgn import data


@pytest.mark.parametrize('as_tar', [False, True])
def test_cifar100_loader_reads_official_layout(tmp_path, as_tar):
  rng = np.random.default_rng(1)
  train = cifar100_dict(50, rng)
  write_cifar100(str(tmp_path), train=train, as_tar=as_tar)
  if as_tar:  # only the archive: the loader must read it without the extracted folder
    import shutil
    shutil.rmtree(tmp_path / 'cifar-100-python')
    data.write_checksums(str(tmp_path))  # not the official archive: pin it
  ds = data.load('cifar100', str(tmp_path))
  assert ds.num_classes == 100
  assert ds.train.x.shape == (50, 32, 32, 3) and ds.train.x.dtype == np.uint8
  assert ds.test.x.shape == (20, 32, 32, 3)
  np.testing.assert_array_equal(ds.train.y, train[b'fine_labels'])
  # Channel-major rows: pixel (0, 0) of image 0 has R, G, B at offsets 0, 1024, 2048.
  np.testing.assert_array_equal(ds.train.x[0, 0, 0], train[b'data'][0, [0, 1024, 2048]])


def test_download_refuses_a_wrong_md5_then_extracts_and_loads(tmp_path, monkeypatch):
  """Without a data folder, load() downloads the archive (here a file:// one), keeps it only
  with the official MD5 (patched to this archive's) and reads the extracted folder."""
  archive = write_cifar100(str(tmp_path / 'server'), as_tar=True)
  monkeypatch.setitem(data.URLS, 'cifar100', f'file://{archive}')
  monkeypatch.setattr(data, 'DOWNLOAD_DIR', str(tmp_path / 'cache'))
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  with pytest.raises(data.DataError, match='MD5 .* the official archive has eb9058c3'):
    data.load('cifar100')
  assert os.listdir(tmp_path / 'cache') == []  # nothing half-downloaded is left
  with open(archive, 'rb') as f:
    monkeypatch.setitem(data.OFFICIAL_MD5['cifar100'], 'cifar-100-python.tar.gz',
                        hashlib.md5(f.read()).hexdigest())
  ds = data.load('cifar100')
  assert ds.train.x.shape == (50, 32, 32, 3)
  assert sorted(os.listdir(tmp_path / 'cache')) == ['cifar-100-python', 'cifar-100-python.tar.gz']


def test_without_data_rebuild_or_network_a_data_test_is_skipped_in_one_line(tmp_path,
                                                                            monkeypatch):
  """A fresh clone without ../shared and without internet: the fixture skips, saying why."""
  monkeypatch.setitem(data.URLS, 'cifar10', f'file://{tmp_path}/nowhere/cifar-10-python.tar.gz')
  with pytest.raises(pytest.skip.Exception) as skipped:
    provide_cifar10(str(tmp_path / 'empty'), prepare=str(tmp_path / 'prepare_cifar10.py'))
  reason = str(skipped.value)
  assert '\n' not in reason and 'no CIFAR-10 in' in reason and 'could not download' in reason


class _Evil:

  def __reduce__(self):
    return (os.system, ('echo pwned',))


def test_restricted_unpickler_refuses_foreign_types(tmp_path):
  folder = write_cifar100(str(tmp_path))
  with open(os.path.join(folder, 'train'), 'wb') as f:
    pickle.dump({b'data': _Evil()}, f)
  with pytest.raises(data.DataError, match='refusing to unpickle'):
    data.load('cifar100', str(tmp_path))


@pytest.mark.parametrize('corruption,message', [
    ('labels', r'labels span \[\d+, 150\], expected \[0, 99\]'),
    ('shape', r'expected uint8 \[N, 3072\]'),
    ('truncated', 'is corrupt'),
    ('missing', 'missing'),
])
def test_bad_archives_are_refused_with_what_was_expected(tmp_path, corruption, message):
  rng = np.random.default_rng(2)
  train = cifar100_dict(10, rng)
  if corruption == 'labels':
    train[b'fine_labels'][0] = 150
  if corruption == 'shape':
    train[b'data'] = train[b'data'][:, :100]
  folder = write_cifar100(str(tmp_path), train=train)
  path = os.path.join(folder, 'train')
  if corruption == 'truncated':
    raw = open(path, 'rb').read()
    open(path, 'wb').write(raw[:len(raw) // 2])
  if corruption == 'missing':
    os.unlink(path)
  with pytest.raises(data.DataError, match=message):
    data.load('cifar100', str(tmp_path))


def _md5s(folder):
  import hashlib
  return {n: hashlib.md5(open(os.path.join(folder, n), 'rb').read()).hexdigest()
          for n in os.listdir(folder)}


def _relabel(path):
  """Changes one label and rewrites the pickle: valid structure, different bytes."""
  with open(path, 'rb') as f:
    obj = pickle.load(f)
  obj[b'fine_labels'][0] = (obj[b'fine_labels'][0] + 1) % 100
  with open(path, 'wb') as f:
    pickle.dump(obj, f, protocol=2)


def test_official_digests_accept_the_files_and_refuse_one_that_changed(tmp_path, monkeypatch):
  folder = write_cifar100(str(tmp_path))
  monkeypatch.setitem(data.OFFICIAL_MD5, 'cifar100', _md5s(folder))  # as if these were official
  assert data.load('cifar100', str(tmp_path)).provenance == 'official files (MD5 verified)'
  _relabel(os.path.join(folder, 'train'))
  with pytest.raises(data.DataError, match=r'train has MD5 \w+, the official file has .* it is '
                     'corrupt; re-download'):
    data.load('cifar100', str(tmp_path))


def test_checksums_pin_a_rebuilt_copy_and_refuse_a_changed_file(tmp_path):
  folder = write_cifar100(str(tmp_path))
  unpinned = data.load('cifar100', str(tmp_path))
  assert unpinned.provenance.startswith('unverified') and '--write_checksums' in (
      unpinned.provenance)
  data.write_checksums(folder)
  pinned = data.load('cifar100', str(tmp_path))
  assert pinned.provenance.startswith('verified against')
  assert pinned.fingerprint == unpinned.fingerprint and len(pinned.fingerprint) == 12
  _relabel(os.path.join(folder, 'train'))
  with pytest.raises(data.DataError, match='changed since it was pinned'):
    data.load('cifar100', str(tmp_path))


def test_an_archive_named_official_with_another_hash_is_refused(tmp_path):
  write_cifar100(str(tmp_path), as_tar=True)
  with pytest.raises(data.DataError, match='cifar-100-python.tar.gz has MD5 .* the official '
                     'cifar-100-python.tar.gz has eb9058c3a382ffc7106e4002c42a8d85'):
    data.load('cifar100', str(tmp_path / 'cifar-100-python.tar.gz'))


def test_missing_data_dir_and_unknown_dataset(tmp_path):
  with pytest.raises(data.DataError, match='does not exist'):
    data.load('cifar10', str(tmp_path / 'nowhere'))
  with pytest.raises(data.DataError, match='no cifar-10-batches-py/'):
    data.load('cifar10', str(tmp_path))
  with pytest.raises(data.DataError, match='unknown dataset'):
    data.load('mnist', str(tmp_path))


def test_real_cifar10_loads(cifar10_dir):
  ds = data.load('cifar10', cifar10_dir)
  assert ds.train.x.shape == (50000, 32, 32, 3) and ds.test.x.shape == (10000, 32, 32, 3)
  assert np.bincount(ds.train.y).tolist() == [5000] * 10
  # Train pixel mean of the official data, per channel (shared/data/README.md).
  np.testing.assert_allclose(ds.train.x.reshape(-1, 3).mean(0), [125.27, 122.93, 113.86],
                             atol=0.05)


def test_augmentation_is_seeded_flip_and_shift():
  x = tf.random.uniform([6, 32, 32, 3], seed=3)
  seed = tf.constant([5, 7])
  a, b = data.augment_batch(x, seed), data.augment_batch(x, seed)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.array_equal(a.numpy(), data.augment_batch(x, tf.constant([5, 8])).numpy())
  assert float(tf.reduce_min(a)) >= 0.0 and float(tf.reduce_max(a)) <= 1.0
  # Each output is a flipped and/or shifted copy: its nonzero pixels are pixels of the input.
  for i in range(6):
    vals = set(np.round(x[i].numpy().ravel(), 6))
    assert set(np.round(a[i].numpy().ravel(), 6)) - {0.0} <= vals


def _shifted(image, dx, dy):
  """numpy reference: out[i, j] = image[i + dy, j + dx], zero outside."""
  out = np.zeros_like(image)
  h, w = image.shape[:2]
  for i in range(h):
    for j in range(w):
      if 0 <= i + dy < h and 0 <= j + dx < w:
        out[i, j] = image[i + dy, j + dx]
  return out


def test_augmentation_is_a_flip_and_shift_of_each_image_by_the_numpy_reference():
  x = tf.random.uniform([4, 8, 8, 3], seed=5).numpy()
  out = data.augment_batch(tf.constant(x), tf.constant([3, 4]), max_shift=2).numpy()
  seen = set()
  for image, result in zip(x, out):
    matches = [(f, dx, dy) for f in (False, True) for dx in range(-2, 3) for dy in range(-2, 3)
               if np.array_equal(result, _shifted(image[:, ::-1] if f else image, dx, dy))]
    assert matches, 'an output is no flip+shift of its input'
    seen.update(matches)
  assert len(seen) > 1  # not the same transform for every image


def test_train_pipeline_skip_resumes_the_same_batches():
  rng = np.random.default_rng(4)
  split = data.Split(rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
                     rng.integers(0, 10, 40).astype(np.int32))
  full = [(x.numpy(), y.numpy()) for x, y in data.train_pipeline(split, 8, 1, 3)]
  tail = [(x.numpy(), y.numpy()) for x, y in data.train_pipeline(split, 8, 1, 3, skip_batches=2)]
  assert len(full) == 5 and len(tail) == 3
  for (xa, ya), (xb, yb) in zip(full[2:], tail):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  other_epoch = [y.numpy() for _, y in data.train_pipeline(split, 8, 1, 4)]
  assert not all(np.array_equal(a[1], b) for a, b in zip(full, other_epoch))


def test_the_pipelines_run_without_the_autotuner():
  # With it on, an epoch's loop stalled after its last step until the autotuner woke.
  split = data.Split(np.zeros((16, 32, 32, 3), np.uint8), np.zeros(16, np.int32))
  for ds in (data.train_pipeline(split, 8, 1, 0), data.eval_pipeline(split, 8)):
    assert ds.options().autotune.enabled is False
    assert sum(1 for _ in ds) == 2
