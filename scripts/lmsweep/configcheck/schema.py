"""Schema errors said in one line each: the key, the bad value, what is allowed; keys given twice; inf and nan.

Snakemake's validate() stops at the first error and prints the whole
sub-schema; here every error of the config is one line, with "did you mean"
for a misspelt key. The schema's defaults are filled in as it validates.
"""

import copy
import difflib
import math

BOUNDS = {
    "minimum": ">=",
    "exclusiveMinimum": ">",
    "maximum": "<=",
    "exclusiveMaximum": "<",
    "minItems": "at least this many items:",
    "minProperties": "at least this many entries:",
}
NUMBER_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
# Why a bound is where it is, when the number alone does not say; by the key's last name.
REASONS = {
    "dropout": "at 1 all LoRA input would be dropped",
    "seed": "numpy's seed range, 0 to 2**32-1",
    "max_length": "shorter leaves no room for a prompt and its answer",
}


def _where(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "the config"


def _range(error) -> str:
    if error.validator not in NUMBER_BOUNDS:
        return f"{BOUNDS[error.validator]} {error.validator_value}"
    return " and ".join(f"{BOUNDS[k]} {error.schema[k]}" for k in NUMBER_BOUNDS if k in error.schema)


def _alternative(schema: dict) -> str:
    """One alternative of an anyOf/oneOf, in words: 'a integer >= 1', "'auto'"."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    kind = schema.get("type", "value")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    bounds = [f"{BOUNDS[k]} {schema[k]}" for k in NUMBER_BOUNDS if k in schema]
    return f"an {kind}" + (" " + " and ".join(bounds) if bounds else "")


def _yaml_text_number(value: str) -> bool:
    """A number in exponent form that YAML 1.1 (PyYAML) reads as text: 1e-4, 5E3."""
    import re

    return bool(re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value.strip()))


def describe(error) -> str:
    where, value = _where(error), error.instance
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(k for k in value if k not in allowed)
        hints = [
            f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, allowed, 1)) else repr(k)
            for k in unknown
        ]
        return f"{where}: unknown key {', '.join(hints)}; allowed: {', '.join(allowed)}"
    if kind == "enum":
        return f"{where}: {value!r} is not allowed; use one of {', '.join(map(str, error.validator_value))}"
    if kind == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else " or ".join(error.validator_value)
        hint = f" (write {int(value)})" if isinstance(value, float) and value.is_integer() else ""
        if isinstance(value, str) and "number" in expected and _yaml_text_number(value):
            # PyYAML reads 1e-4 (no dot in the mantissa) as text, not as a number
            mantissa, _, exponent = value.lower().partition("e")
            hint = f" (YAML reads {value} as text: write {float(mantissa):.1f}e{exponent})"
        return f"{where}: {value!r} is a {type(value).__name__}, expected {expected}{hint}"
    if kind == "uniqueItems":
        seen, repeated = [], []
        for item in value:
            (repeated if item in seen else seen).append(item)
        return f"{where}: {', '.join(map(repr, dict.fromkeys(repeated)))} listed twice; list each once"
    if kind in BOUNDS:
        reason = REASONS.get(str(error.absolute_path[-1]) if error.absolute_path else "")
        return f"{where}: {value!r} is out of range; it must be {_range(error)}" + (f" ({reason})" if reason else "")
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return f"{where}: missing required key {', '.join(missing)}"
    if kind == "pattern" and error.validator_value == "^[0-9a-f]{64}$":
        return f"{where}: {value!r} is not a sha256: give the 64 lowercase hex digits `sha256sum FILE` prints"
    if kind == "pattern":
        return (
            f"{where}: {value!r} is not allowed: use letters, digits, '_' and '-' "
            f"(pattern {error.validator_value}; it becomes a file path and a wildcard)"
        )
    if kind == "oneOf" and error.schema.get("oneOf") and all("required" in s for s in error.schema["oneOf"]):
        options = " or ".join(s["required"][0] for s in error.schema["oneOf"])
        return f"{where}: give exactly one of {options}"
    if kind == "not":
        return f"{where}: {value!r} is not allowed here"
    if kind in ("anyOf", "oneOf") and error.schema.get(kind):
        return f"{where}: {value!r} is not allowed; give {' or '.join(_alternative(s) for s in error.schema[kind])}"
    return f"{where}: {error.message}"


def _filling_validator(schema: dict):
    """A Draft 2020-12 validator that writes each missing key's default into the config as it validates.

    jsonschema's documented recipe (its FAQ), as Snakemake's validate() does it,
    but on an object only and with a copy of each default (a shared `[]` would
    tie the models' lists together).
    """
    from jsonschema import Draft202012Validator, validators

    properties = Draft202012Validator.VALIDATORS["properties"]

    def fill_then_check(validator, props, instance, subschema):
        if validator.is_type(instance, "object"):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from properties(validator, props, instance, subschema)

    # JSON Schema counts 2.0 as an integer; Python does not (range(2.0), a batch of 16.0 examples): a
    # float where a count belongs is said here, by its key, not as a TypeError in a job an hour later.
    def whole_number(checker, instance):
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", whole_number)
    return validators.extend(Draft202012Validator, {"properties": fill_then_check}, type_checker=checker)(schema)


def schema_errors(config: dict, schema: dict) -> list:
    """The schema's errors, sorted by key; fills the schema's defaults into `config`."""
    errors = _filling_validator(schema).iter_errors(config)
    return sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.validator))


def nonfinite_numbers(node, path=()):
    """(path, value) of every inf or nan in the config: no bound in the schema catches nan."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from nonfinite_numbers(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from nonfinite_numbers(value, (*path, index))
    elif isinstance(node, float) and not math.isfinite(node):
        yield path, node


def duplicate_key_problems(path: str) -> list:
    """Keys given twice in one mapping of a YAML (or JSON) config file, with both line numbers.

    Snakemake loads the file with PyYAML, which silently keeps the last of two
    equal keys: a second `tiny_llama:` entry would replace the first.
    """
    import yaml

    try:
        with open(path) as fh:
            root = yaml.compose(fh, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return []  # Snakemake has read it already; what it could not read, it has said
    problems = []

    def walk(node, where):
        if isinstance(node, yaml.MappingNode):
            first = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                    continue
                name, line = ".".join([*where, key.value]), key.start_mark.line + 1
                if key.value in first:
                    problems.append(
                        f"{path}: {name} is given twice (lines {first[key.value]} and {line}); "
                        "YAML keeps only the last one, so remove or rename one"
                    )
                else:
                    first[key.value] = line
                walk(value, [*where, key.value])
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, [*where, str(index)])

    walk(root, [])
    return problems
