"""CIFAR-10/100 from the official python archives, and the tf.data pipelines.

The readers accept the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``, their
extracted folder (``cifar-10-batches-py/``, ``cifar-100-python/``) or the folder holding either.
Pickles are read with a restricted unpickler that admits only what the archives contain, and every
array is checked for shape, dtype and label range before training.

Integrity: every file read is hashed (MD5). Files that match the official digests are accepted; a
``checksums.md5`` (``md5sum`` format) beside them pins any other copy, e.g. one rebuilt offline
(``python -m tf_pgn.data --write_checksums DIR``); a file that disagrees with either is refused.
A copy that is neither official nor pinned loads with a one-line warning (structural checks only).

Without a data folder (``--data_dir`` or ``$TF_PGN_DATA_DIR``) the official archive is downloaded
once into ``~/.keras/datasets`` (``download``: MD5-checked, then extracted).
"""
import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request

import numpy as np
import tensorflow as tf

DATA_DIR_ENV = 'TF_PGN_DATA_DIR'


class DataError(ValueError):
  """The data is missing or not what the official archive holds; the message says which."""


@dataclasses.dataclass
class Split:
  """Images uint8 [N, 32, 32, 3] (HWC) and int32 labels [N]."""
  x: np.ndarray
  y: np.ndarray


@dataclasses.dataclass
class Dataset:
  name: str
  num_classes: int
  train: Split
  test: Split
  # How the files were verified (see the module docstring) and an MD5 of the loaded arrays that
  # identifies the data whatever its container: a run directory records it.
  provenance: str = ''
  fingerprint: str = ''


_LAYOUT = {
    # dataset: (archive folder, archive file, train members, test members, label key, classes)
    'cifar10': ('cifar-10-batches-py', 'cifar-10-python.tar.gz',
                [f'data_batch_{i}' for i in range(1, 6)], ['test_batch'], b'labels', 10),
    'cifar100': ('cifar-100-python', 'cifar-100-python.tar.gz', ['train'], ['test'],
                 b'fine_labels', 100),
}

NUM_CLASSES = {name: layout[-1] for name, layout in _LAYOUT.items()}

# MD5 of the official archives and of the files in them (https://www.cs.toronto.edu/~kriz/cifar.html;
# torchvision checks the same values).
OFFICIAL_MD5 = {
    'cifar10': {'cifar-10-python.tar.gz': 'c58f30108f718f92721af3b95e74349a',
                'data_batch_1': 'c99cafc152244af753f735de768cd75f',
                'data_batch_2': 'd4bba439e000b95fd0a9bffe97cbabec',
                'data_batch_3': '54ebc095f3ab1f0389bbae665268c751',
                'data_batch_4': '634d18415352ddfa80567beed471001a',
                'data_batch_5': '482c414d41f54cd18b22e5b47cb7c3cb',
                'test_batch': '40351d587109b95175f43aff81a1287e'},
    'cifar100': {'cifar-100-python.tar.gz': 'eb9058c3a382ffc7106e4002c42a8d85',
                 'train': '16019d7e3df5f24257cddd939b257f8d',
                 'test': 'f0ef6b0ae62326f3e7ffdfab6717acfc'},
}
CHECKSUMS_FILE = 'checksums.md5'
URLS = {'cifar10': 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz',
        'cifar100': 'https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz'}
DOWNLOAD_DIR = os.path.join('~', '.keras', 'datasets')

# What the official pickles contain: dicts of bytes, lists, ints and numpy uint8 arrays.
_ALLOWED_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('_codecs', 'encode'),
}


class _RestrictedUnpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) not in _ALLOWED_GLOBALS:
      raise DataError(f'refusing to unpickle {module}.{name}: not a type the CIFAR archives hold')
    return super().find_class(module, name)


def _unpickle(raw: bytes, what: str) -> dict:
  try:
    obj = _RestrictedUnpickler(io.BytesIO(raw), encoding='bytes').load()
  except DataError as e:
    raise DataError(f'{what}: {e}') from None
  except Exception as e:  # truncated or not a pickle at all
    raise DataError(f'{what} is corrupt ({type(e).__name__}: {e}); re-download or re-create '
                    'the archive') from None
  if not isinstance(obj, dict):
    raise DataError(f'{what} holds a {type(obj).__name__}, expected a dict as in the official '
                    'archive')
  return obj


def _to_split(batches: list, label_key: bytes, num_classes: int, what: str) -> Split:
  xs, ys = [], []
  for name, d in batches:
    if b'data' not in d or label_key not in d:
      raise DataError(f'{what}/{name} lacks keys {b"data"!r} and {label_key!r}: is this the '
                      'right dataset?')
    x, y = d[b'data'], np.asarray(d[label_key])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
      shape = getattr(x, 'shape', None)
      dtype = getattr(x, 'dtype', type(x).__name__)
      raise DataError(f'{what}/{name}: data has shape {shape} dtype {dtype}, expected uint8 '
                      '[N, 3072]')
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
      raise DataError(f'{what}/{name}: {len(y)} labels for {len(x)} images, expected one '
                      'integer label per image')
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
      raise DataError(f'{what}/{name}: labels span [{y.min()}, {y.max()}], expected '
                      f'[0, {num_classes - 1}]')
    xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    ys.append(y.astype(np.int32))
  return Split(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys))


def _md5(raw: bytes) -> str:
  return hashlib.md5(raw).hexdigest()


def _read_checksums(folder: str) -> dict:
  """{file name: md5} from ``folder/checksums.md5``, or {} when there is none."""
  path = os.path.join(folder, CHECKSUMS_FILE)
  if not os.path.isfile(path):
    return {}
  sums = {}
  with open(path) as f:
    for n, line in enumerate(f, 1):
      parts = line.split()
      if not parts:
        continue
      if len(parts) != 2 or len(parts[0]) != 32:
        raise DataError(f'{path}:{n} is not "<md5>  <file>": rewrite it with '
                        '`python -m tf_pgn.data --write_checksums DIR`')
      sums[parts[1].lstrip('*')] = parts[0].lower()
  return sums


def _verify(digests: dict, official: dict, pinned: dict, where: str) -> str:
  """Checks {file: md5} against ``pinned`` (checksums.md5) if given, else the official digests.

  Returns the provenance line; raises DataError for a file that contradicts either.
  """
  if pinned:
    for name, got in digests.items():
      if name not in pinned:
        raise DataError(f'{where}/{name} is not listed in {CHECKSUMS_FILE}: rewrite it with '
                        f'`python -m tf_pgn.data --write_checksums {where}`')
      if got != pinned[name]:
        raise DataError(f'{where}/{name} has MD5 {got} but {CHECKSUMS_FILE} says {pinned[name]}: '
                        'the file changed since it was pinned; re-create the data')
    return f'verified against {os.path.join(where, CHECKSUMS_FILE)}'
  matching = [n for n, got in digests.items() if official.get(n) == got]
  if len(matching) == len(digests):
    return 'official files (MD5 verified)'
  if matching:  # some official files and some not: an official copy went bad
    bad = next(n for n in digests if n not in matching)
    raise DataError(f'{where}/{bad} has MD5 {digests[bad]}, the official file has '
                    f'{official.get(bad)} while the other files are official: it is corrupt; '
                    're-download the archive')
  return (f'unverified: {where} is not the official files and has no {CHECKSUMS_FILE} '
          '(structural checks only); pin it with `python -m tf_pgn.data --write_checksums '
          f'{where}`')


def _read_members(path: str, folder: str, members: list, official: dict) -> tuple:
  """Reads the named pickles from an extracted folder or a .tar.gz archive.

  Returns ([(member, dict)], provenance line).
  """
  if os.path.isdir(path):
    base = path if os.path.basename(os.path.normpath(path)) == folder else os.path.join(path,
                                                                                       folder)
    raws = {}
    for m in members:
      p = os.path.join(base, m)
      if not os.path.isfile(p):
        raise DataError(f'missing {p}: point --data_dir (or ${DATA_DIR_ENV}) at the folder '
                        f'holding {folder}/ or its archive')
      with open(p, 'rb') as f:
        raws[m] = f.read()
    provenance = _verify({m: _md5(r) for m, r in raws.items()}, official, _read_checksums(base),
                         base)
    return [(m, _unpickle(r, os.path.join(base, m))) for m, r in raws.items()], provenance
  try:
    with open(path, 'rb') as f:
      archive_md5 = _md5(f.read())
    name = os.path.basename(path)
    provenance = _verify({name: archive_md5}, official, _read_checksums(os.path.dirname(path)),
                         os.path.dirname(path) or '.')
    if provenance.startswith('unverified') and name in official:
      raise DataError(f'{path} has MD5 {archive_md5}, the official {name} has {official[name]}: '
                      'the download is corrupt or altered; download it again')
    with tarfile.open(path, 'r:*') as tar:
      out = []
      for m in members:
        try:
          f = tar.extractfile(f'{folder}/{m}')
        except KeyError:
          raise DataError(f'{path} has no {folder}/{m}: is it the official archive of this '
                          'dataset?') from None
        out.append((m, _unpickle(f.read(), f'{path}:{folder}/{m}')))
      return out, provenance
  except (tarfile.TarError, EOFError, OSError) as e:
    raise DataError(f'{path} is not a readable archive ({e}); re-download it') from None


def write_checksums(folder: str) -> str:
  """Pins the CIFAR files in ``folder`` by writing ``folder/checksums.md5``; returns its path."""
  names = sorted(n for n in os.listdir(folder) if n != CHECKSUMS_FILE and not n.startswith('.')
                 and os.path.isfile(os.path.join(folder, n)))
  if not names:
    raise DataError(f'{folder} holds no files to pin')
  lines = []
  for n in names:
    with open(os.path.join(folder, n), 'rb') as f:
      lines.append(f'{_md5(f.read())}  {n}\n')
  path = os.path.join(folder, CHECKSUMS_FILE)
  from tf_pgn.io_utils import write_text_atomic  # pylint: disable=g-import-not-at-top
  write_text_atomic(path, ''.join(lines))
  return path


def fingerprint(*splits: Split) -> str:
  """MD5 of the images and labels (12 hex digits): the same data from any container agrees."""
  h = hashlib.md5()
  for split in splits:
    h.update(np.ascontiguousarray(split.x).data)
    h.update(np.ascontiguousarray(split.y, dtype=np.int32).data)
  return h.hexdigest()[:12]


def _find_source(path: str, folder: str, archive: str) -> str:
  """The extracted folder or archive for this dataset at or under path."""
  candidates = [path, os.path.join(path, folder), os.path.join(path, archive)]
  if os.path.isfile(path) or os.path.basename(os.path.normpath(path)) == folder:
    return path
  for c in candidates[1:]:
    if os.path.exists(c):
      return c
  raise DataError(f'no {folder}/ or {archive} in {path}: point --data_dir (or ${DATA_DIR_ENV}) '
                  'at the folder that holds the official CIFAR python archive')


def load(dataset: str, data_dir: str | None = None) -> Dataset:
  """Loads CIFAR-10 or CIFAR-100 (fine labels).

  From ``data_dir``, else ``$TF_PGN_DATA_DIR``, else the official archive (``download``).
  """
  if dataset not in _LAYOUT:
    raise DataError(f'unknown dataset {dataset!r}: use one of {", ".join(_LAYOUT)}')
  folder, archive, train_m, test_m, label_key, k = _LAYOUT[dataset]
  data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or download(dataset)
  if not os.path.exists(data_dir):
    raise DataError(f'--data_dir {data_dir} does not exist')
  src = _find_source(data_dir, folder, archive)
  members, provenance = _read_members(src, folder, train_m + test_m, OFFICIAL_MD5[dataset])
  train = _to_split(members[:len(train_m)], label_key, k, src)
  test = _to_split(members[len(train_m):], label_key, k, src)
  return Dataset(dataset, k, train, test, provenance, fingerprint(train, test))


def download(dataset: str, folder: str | None = None, timeout: float = 60.0) -> str:
  """The folder holding ``dataset``'s official files: downloads the official archive into
  ``folder`` (default ``~/.keras/datasets``) unless it or its extracted folder is there, refuses
  it unless its MD5 is the official one, and extracts it beside itself. ``load`` then verifies
  every file it reads. Raises DataError (one line) when the archive cannot be had."""
  name, archive = _LAYOUT[dataset][:2]
  folder = os.path.expanduser(folder or DOWNLOAD_DIR)
  path = os.path.join(folder, archive)
  if os.path.exists(os.path.join(folder, name)):
    return folder
  if not os.path.exists(path):
    _fetch(URLS[dataset], path, OFFICIAL_MD5[dataset][archive], timeout)
  # Extracted beside the archive, then renamed into place: a killed extraction leaves no folder.
  tmp = tempfile.mkdtemp(prefix='.extract-', dir=folder)
  try:
    with tarfile.open(path, 'r:gz') as tar:
      tar.extractall(tmp, members=[m for m in tar.getmembers() if m.name.startswith(name + '/')],
                     filter='data')
    os.replace(os.path.join(tmp, name), os.path.join(folder, name))
  except (tarfile.TarError, EOFError, OSError) as e:
    raise DataError(f'{path} is not a readable archive ({e}); delete it to download it '
                    'again') from None
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return folder


def _fetch(url: str, path: str, md5: str, timeout: float) -> None:
  """Downloads ``url`` to ``path`` (atomically) if its MD5 is ``md5``."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  digest = hashlib.md5()
  with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), prefix='.download-',
                                   delete=False) as f:
    try:
      with urllib.request.urlopen(url, timeout=timeout) as response:
        for chunk in iter(lambda: response.read(1 << 20), b''):
          digest.update(chunk)
          f.write(chunk)
    except (OSError, ValueError) as e:  # no network, refused, a timeout, a bad URL
      os.remove(f.name)
      raise DataError(f'could not download {url} ({type(e).__name__}: {e}); download the '
                      f'official archive yourself and pass --data_dir or set ${DATA_DIR_ENV}'
                      ) from None
  if digest.hexdigest() != md5:
    os.remove(f.name)
    raise DataError(f'{url} gave a file with MD5 {digest.hexdigest()}, the official archive has '
                    f'{md5}: the download is corrupt or altered; try again')
  os.replace(f.name, path)


def subset(split: Split, size: int | None) -> Split:
  """The first ``size`` examples (all when None)."""
  if size is None or size >= len(split.y):
    return split
  return Split(split.x[:size], split.y[:size])


def augment_batch(images: tf.Tensor, seed: tf.Tensor, max_shift: int = 4) -> tf.Tensor:
  """Random horizontal flip and random shift of up to ``max_shift`` pixels (zero fill).

  Output pixel (row i, column j) of an image shifted by (dx, dy) reads input pixel
  (i + dy, j + dx) of the (flipped) image, zero outside. Done as two batched gathers from the
  zero-padded batch (10x the images/s of a projective transform on CPU). Stateless: the same
  ``seed`` (int32 [2]) gives the same batch, so a resumed run sees the same augmented data as an
  uninterrupted one.
  """
  n, size = tf.shape(images)[0], images.shape[1]
  seeds = tf.random.experimental.stateless_split(seed, 2)
  flip = tf.random.stateless_uniform([n], seeds[0]) < 0.5
  shift = tf.random.stateless_uniform([n, 2], seeds[1], -max_shift, max_shift + 1, tf.int32)
  padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
  ramp = tf.range(size)[None, :]
  rows = ramp + shift[:, 1:2] + max_shift
  cols = ramp + shift[:, 0:1]  # column of the flipped image; un-flip it to index the input
  cols = tf.where(flip[:, None], size - 1 - cols, cols) + max_shift
  out = tf.gather(padded, rows, axis=1, batch_dims=1)
  return tf.gather(out, cols, axis=2, batch_dims=1)


def _to_float(x):
  return tf.cast(x, tf.float32) / 255.0


def train_pipeline(split: Split, batch_size: int, seed: int, epoch: int, skip_batches: int = 0,
                   augment: bool = True) -> tf.data.Dataset:
  """One epoch of shuffled, augmented batches of float32 images in [0, 1] and int32 labels.

  The order depends only on (seed, epoch); ``skip_batches`` resumes mid-epoch.
  """
  perm = np.random.default_rng([seed, epoch]).permutation(len(split.y))
  num_batches = len(perm) // batch_size
  ds = tf.data.Dataset.from_tensor_slices((split.x[perm], split.y[perm]))
  ds = ds.batch(batch_size, drop_remainder=True).enumerate().skip(skip_batches)

  def prepare(i, batch):
    x, y = batch
    x = _to_float(x)
    if augment:
      x = augment_batch(x, tf.stack([tf.cast(seed * 100003 + epoch, tf.int32),
                                     tf.cast(i, tf.int32)]))
    return x, y

  ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return _without_autotuning(ds.prefetch(tf.data.AUTOTUNE).apply(
      tf.data.experimental.assert_cardinality(num_batches - skip_batches)))


def eval_pipeline(split: Split, batch_size: int) -> tf.data.Dataset:
  """Batches in order, float32 images in [0, 1]."""
  ds = tf.data.Dataset.from_tensor_slices((split.x, split.y)).batch(batch_size)
  return _without_autotuning(ds.map(lambda x, y: (_to_float(x), y),
                                   num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=True).prefetch(tf.data.AUTOTUNE))


def _without_autotuning(ds: tf.data.Dataset) -> tf.data.Dataset:
  """``ds`` with tf.data's autotuner off. Every epoch makes a new iterator, and with the
  autotuner on the loop over an epoch's batches often stalled after its last step (epochs took up
  to twice their steps' time) until the autotuner's thread woke; with it off none did. The map's
  and the prefetch's AUTOTUNE then take static defaults; the batches are the same."""
  options = tf.data.Options()
  options.autotune.enabled = False
  return ds.with_options(options)


def to_float(x: np.ndarray) -> np.ndarray:
  """uint8 images to float32 in [0, 1]."""
  return x.astype(np.float32) / 255.0


def main(argv=None) -> None:
  """``python -m tf_pgn.data --write_checksums DIR``: pin a copy of the data (see the docstring)."""
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(prog='python -m tf_pgn.data', description=main.__doc__)
  parser.add_argument('--write_checksums', metavar='DIR', required=True,
                      help='folder holding the CIFAR files, e.g. .../cifar-10-batches-py')
  folder = os.path.expanduser(parser.parse_args(argv).write_checksums)
  try:
    if not os.path.isdir(folder):
      raise DataError(f'{folder} is not a folder: pass the one holding the CIFAR files')
    print(f'wrote {write_checksums(folder)}')
  except DataError as e:
    raise SystemExit(f'tf_pgn.data: {e}') from None


if __name__ == '__main__':
  main()
