"""@flow and @task on methods: instance, class and static (concepts/flows, tasks)."""

from prefect import flow, task


class Calculator:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    @task
    def add(self, x: int) -> int:
        return x + self.offset

    @flow
    def run(self, x: int) -> int:
        return self.add(x) * 2

    @classmethod
    @flow
    def build(cls, offset: int) -> str:
        return f"{cls.__name__}({offset})"

    @staticmethod
    @task
    def square(x: int) -> int:
        return x * x

    @flow
    def squares(self, n: int) -> list:
        return [self.square(i) for i in range(n)]


calculator = Calculator(10)
print(calculator.run(1))
print(Calculator.build(3))
print(calculator.squares(3))
print(Calculator.run.name, Calculator.add.name)
