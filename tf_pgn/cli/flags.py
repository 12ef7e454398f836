"""Command-line flags made from a config dataclass (``TrainConfig``, ``EvalConfig``).

One flag per field: its type from the annotation (bool, int, float, str, tuple as a comma list,
or any of them ``| None``; a float may be written as a fraction, ``--eps=8/255``), its help and,
for an enum flag, its choices from the field's metadata
(``tf_pgn.config.setting``). Every flag defaults to None, which leaves the config's own value (a
preset's, or the field default named in the help): a new setting is one field, not three edits.
"""
import dataclasses
import os
import sys
import typing

from absl import flags

class FractionParser(flags.FloatParser):
  """A float flag that also takes ``a/b`` (``--eps=8/255``): Linf budgets are pixel levels."""

  def parse(self, argument):
    if isinstance(argument, str) and '/' in argument:
      numerator, _, denominator = argument.partition('/')
      try:
        value = float(numerator) / float(denominator)
      except (ValueError, ZeroDivisionError):
        raise ValueError(f'{argument!r} is not a number or a fraction a/b with b != 0, e.g. '
                         '8/255') from None
      return super().parse(value)
    return super().parse(argument)


def _define_float(name, default, help_text, flag_values):
  flags.DEFINE(FractionParser(), name, default, help_text, flag_values=flag_values)


_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: _define_float,
           str: flags.DEFINE_string, tuple: flags.DEFINE_list}


def _base_type(annotation):
  """``int`` for ``int`` and ``int | None``; likewise the other types."""
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  return args[0] if args else annotation


def _text(value) -> str:
  if isinstance(value, tuple):
    return ','.join(map(_text, value))
  if isinstance(value, float):
    return f'{value:g}'
  return 'none' if value is None else str(value)


def define_config_flags(config_class, default_note: str,
                        flag_values: flags.FlagValues = flags.FLAGS) -> tuple:
  """Defines a flag for every field of ``config_class`` in ``flag_values``; ``default_note``
  (e.g. ``'(default {})'``) appends the field's default to its help. Returns the field names."""
  names = []
  for field in dataclasses.fields(config_class):
    help_text = f'{field.metadata.get("help", "")} {default_note.format(_text(field.default))}'
    choices = field.metadata.get('choices')
    if choices:
      flags.DEFINE_enum(field.name, None, list(choices), help_text, flag_values=flag_values)
    else:
      kind = _base_type(field.type)
      if kind not in _DEFINE:
        raise TypeError(f'{config_class.__name__}.{field.name}: no flag for type {field.type}')
      _DEFINE[kind](field.name, None, help_text, flag_values=flag_values)
    names.append(field.name)
  return tuple(names)


def define_data_dir_flag() -> None:
  """--data_dir, the same for every command that reads CIFAR."""
  flags.DEFINE_string('data_dir', None, 'Folder with the official CIFAR python archive (or set '
                      '$TF_PGN_DATA_DIR); without either, the archive is downloaded.')


def show_in_help(names, doc: str) -> None:
  """Lists the flags ``names`` under ``--help`` after ``doc`` (absl's help shows the main
  module's docstring and flags; these are defined here and in the command's module, and the main
  module may be a console script with neither)."""
  main = sys.modules['__main__']
  if not main.__doc__:
    main.__doc__ = doc
  for name in names:
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])


def expand(path: str | None) -> str | None:
  """``path`` with ``~`` expanded (a flag's value is not expanded by the shell after ``=``)."""
  return os.path.expanduser(path) if path else path
