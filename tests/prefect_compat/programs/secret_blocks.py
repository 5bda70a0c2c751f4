"""Secret blocks: save, load, get; values are masked (concepts/blocks)."""

from prefect.blocks.system import Secret

Secret(value="s3cr3t-token").save("api-token")
secret = Secret.load("api-token")
print(secret.get())
print("masked:", "s3cr3t-token" not in repr(secret), "s3cr3t-token" not in str(secret.value))
try:
    Secret(value="other").save("api-token")
except Exception as error:
    print(type(error).__name__)
Secret(value="rotated").save("api-token", overwrite=True)
print(Secret.load("api-token").get())
try:
    Secret.load("missing-secret")
except Exception as error:
    print(type(error).__name__)
