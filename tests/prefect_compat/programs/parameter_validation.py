"""Parameters are validated and coerced from type hints (concepts/flows, pass-inputs)."""

from prefect import flow


@flow
def square(number: int) -> int:
    return number * number


@flow(validate_parameters=False)
def unvalidated(number: int):
    return repr(number)


print("coerced:", square("7"))
try:
    square("seven")
except Exception as error:
    print("invalid:", type(error).__name__)
    print("names the parameter:", "number" in str(error))
print("not validated:", unvalidated("7"))
print("state:", square("x", return_state=True).type.value)
