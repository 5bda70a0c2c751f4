"""Variable.set / get / unset with defaults and overwrite (concepts/variables)."""

from prefect.variables import Variable

print(Variable.get("answer", default=None))
print(Variable.get("answer", default="fallback"))
Variable.set("answer", 42)
print(Variable.get("answer"))
try:
    Variable.set("answer", 43)
except Exception as error:
    print(type(error).__name__, "|", error)
Variable.set("answer", 43, overwrite=True)
print(Variable.get("answer"))
Variable.set("settings", {"region": "eu", "limits": [1, 2]})
print(Variable.get("settings"))
print(Variable.unset("answer"), Variable.get("answer", default="gone"))
