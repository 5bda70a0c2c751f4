"""Calling a flow without a required argument (concepts/flows)."""

from prefect import flow, task


@flow
def greet(name: str, greeting: str = "hello") -> str:
    return f"{greeting} {name}"


@task
def shout(word: str) -> str:
    return word.upper()


@flow
def calls_task_badly() -> str:
    return shout()


print(greet("ada"))
try:
    greet()
except Exception as error:
    print(type(error).__name__, "|", error)
try:
    greet("ada", nickname="al")
except Exception as error:
    print(type(error).__name__, "|", error)
try:
    calls_task_badly()
except Exception as error:
    print(type(error).__name__, "|", "word" in str(error))
