import os

import segment.analytics as analytics
from segment.analytics import Client

analytics.write_key = "5fGh8sKq2LmN9pQr"
client = Client("9xYz7WvU6tSr5QpO")
other = Client(write_key="k3Jh5Gf7Ds9Aq1Wz")

# near misses: from the environment, a placeholder, a short test value
analytics.write_key = os.environ["SEGMENT_WRITE_KEY"]
backup = Client(write_key=os.getenv("SEGMENT_WRITE_KEY", ""))
placeholder = Client("<your write key>")
test_client = Client(write_key="test")
