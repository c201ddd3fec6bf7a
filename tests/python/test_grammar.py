"""Grammar-constrained generation through the Python binding: GBNF,
JSON Schema -> grammar, and on SmolLM2 ($SIGMA_TEST_MODEL) samples at
temperature 1.0 over a dozen schemas that must all parse as JSON and
validate (jsonschema from PyPI). SIGMA_GRAMMAR_SAMPLES sets the number of
samples (default 200, spread over the schemas; the regular suite runs 36,
the 'slow' suite's python-grammar-200 the full 200)."""
import json
import os

import pytest

import sigma

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = [
    {"type": "object",
     "properties": {"name": {"type": "string", "maxLength": 20},
                    "age": {"type": "integer"}},
     "required": ["name", "age"]},
    {"type": "object",
     "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 24},
                    "population": {"type": "number"},
                    "capital": {"type": "boolean"}},
     "required": ["city"]},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 5},
    {"enum": ["red", "green", "blue", 7, None]},
    {"type": "object",
     "properties": {"colour": {"enum": ["red", "green", "blue"]},
                    "ok": {"const": True}},
     "required": ["colour", "ok"], "additionalProperties": False},
    {"type": "object",
     "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 10},
                             "maxItems": 3},
                    "id": {"type": "integer"}},
     "required": ["tags"]},
    {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 12}, {"type": "null"}]},
    {"type": "object",
     "properties": {"point": {"type": "object",
                              "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                              "required": ["x", "y"]},
                    "label": {"type": ["string", "null"], "maxLength": 16}},
     "required": ["point", "label"]},
    {"$defs": {"item": {"type": "object",
                        "properties": {"sku": {"type": "string", "maxLength": 8},
                                       "qty": {"type": "integer"}},
                        "required": ["sku", "qty"]}},
     "type": "object",
     "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"},
                              "maxItems": 3}},
     "required": ["items"]},
    # (additionalProperties with a schema is tested in tests/text: its keys
    # are unbounded strings, in which SmolLM2 at temperature 1.0 can ramble
    # past any max_tokens)
    {"type": "object",
     "properties": {"answer": {"type": "string", "maxLength": 30},
                    "score": {"type": "number"}},
     "required": ["answer"],
     "additionalProperties": False},
    {"oneOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                "additionalProperties": False},
               {"type": "array", "items": {"type": "boolean"}, "maxItems": 4}]},
    {"type": "boolean"},
]


def _model_path():
    p = os.environ.get("SIGMA_TEST_MODEL")
    return p if p and os.path.exists(p) else None


def test_schema_to_grammar():
    g = sigma.json_schema_to_grammar({"type": "object", "properties": {"a": {"type": "integer"}},
                                      "required": ["a"]})
    assert "root ::=" in g and "json-integer" in g
    with pytest.raises(sigma.SigmaError) as e:
        sigma.json_schema_to_grammar('{"type": "string", "pattern": "x+"}')
    assert e.value.status == -5  # SIGMA_E_UNSUPPORTED
    with pytest.raises(sigma.SigmaError):
        sigma.json_schema_to_grammar('{"type": ')


@pytest.fixture(scope="module")
def model():
    path = _model_path()
    if not path:
        pytest.skip("SIGMA_TEST_MODEL is not set")
    with sigma.Model(path) as m:
        yield m


def test_bad_grammar(model):
    with pytest.raises(sigma.SigmaError) as e:
        sigma.Sampler(model, grammar='root ::= "a" |\n  ( "b"\n')
    assert "line" in str(e.value) and "column" in str(e.value)


def test_exact_string(model):
    want = 'The answer is {"x": 42}.'
    grammar = 'root ::= "The answer is {\\"x\\": 42}."\n'
    with sigma.Session(model, n_ctx=256) as s:
        out = "".join(s.generate("Say something:", max_tokens=64, temperature=1.0, seed=3,
                                 grammar=grammar))
    assert out == want
    assert s.last_stats.stop_reason == "eog"


def test_json_schema_samples(model):
    total = int(os.environ.get("SIGMA_GRAMMAR_SAMPLES", "200"))
    per = max(1, -(-total // len(SCHEMAS)))
    done = 0
    with sigma.Session(model, n_ctx=1024) as s:
        for k, schema in enumerate(SCHEMAS):
            grammar = sigma.json_schema_to_grammar(schema)
            msgs = [{"role": "user",
                     "content": "Reply with JSON for this schema: " + json.dumps(schema)}]
            for i in range(per):
                if done >= total:
                    break
                out = "".join(s.chat(msgs, max_tokens=300, temperature=1.0,
                                     seed=1000 * k + i, grammar=grammar))
                assert s.last_stats.stop_reason == "eog", (schema, out)
                value = json.loads(out)
                jsonschema.validate(value, schema)
                done += 1
    assert done == total
