"""A plain Locust user, as an SRE already has one: no gala import. tests/scenarios/reuse.yaml names it."""

from locust import FastHttpUser, constant, task


class Tapper(FastHttpUser):
    wait_time = constant(30)  # gala's pacing replaces it: a run that keeps this pace makes one tap per user

    def on_start(self) -> None:
        with self.client.post("/users", json={"name": "tapper"}, name="/users", catch_response=True) as resp:
            token = resp.json()["token"] if resp.status_code == 201 else ""
        self.auth = {"Authorization": f"Bearer {token}"}

    @task(3)
    def tap(self) -> None:
        self.client.post("/grab", json={}, headers=self.auth, name="grab:tap")   # a `<link>:` prefix

    @task(1)
    def look(self) -> None:
        self.client.get("/drop", headers=self.auth, name="/drop")                # mapped by request_links
