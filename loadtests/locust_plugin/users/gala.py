"""The night's users against the built-in target (loadtests/target/API.md): grabbers, sharers, chatters.

Every user registers and makes friends when it starts (link `setup`), then acts at its pace. Requests
are named `<link>:<label>` (grab:tap, share:card, share:split, chat:send, chat:inbox, setup:register,
setup:friend): the link is the text before the first ':'. A "nothing" answer to a tap is a success;
4xx/5xx are failures.
"""

from __future__ import annotations

from collections import deque

from locust import task

from loadtests.locust_plugin.users.base import ScenarioUser

# Users registered recently in this process: newcomers befriend a few of them (per worker when distributed).
_registry: deque[int] = deque(maxlen=500)


class GalaUser(ScenarioUser):
    """Registers, befriends `params.friends` recent users, then keeps the token and friend list."""

    abstract = True

    def on_start(self) -> None:
        self.user_id: int | None = None
        self.auth: dict[str, str] = {}
        self.friends: list[int] = []
        self.cards: list[int] = []
        self.envelopes: list[tuple[int, int]] = []  # (envelope_id, amount_fen)
        self.register()
        self.start_pacing()

    def register(self) -> bool:
        name = f"{type(self).__name__}-{self.worker_index}-{self.user_index}"
        reply = self.call("POST", "/users", "setup:register", json={"name": name})
        if not reply:
            return False
        self.user_id, self.auth = reply["user_id"], {"Authorization": f"Bearer {reply['token']}"}
        want = int(self.params.get("friends", 3))
        candidates = [u for u in _registry if u != self.user_id]
        for friend in self.rng.sample(candidates, min(want, len(candidates))):
            self.befriend(friend)
        _registry.append(self.user_id)
        return True

    def befriend(self, friend: int) -> None:
        if self.call("POST", "/friends", "setup:friend", json={"friend_id": friend}, headers=self.auth) is not None:
            self.friends.append(friend)

    def ready(self) -> bool:
        """Registered (retrying if the target was down at start) and, if possible, with a friend."""
        if self.user_id is None and not self.register():
            return False
        if not self.friends:
            candidates = [u for u in _registry if u != self.user_id]
            if candidates:
                self.befriend(self.rng.choice(candidates))
        return True

    def tap(self) -> None:
        """POST /grab; a win is remembered (cards and envelopes are what a sharer shares)."""
        reply = self.call("POST", "/grab", "grab:tap", json={}, headers=self.auth)
        if not reply:
            return
        if reply.get("result") == "envelope":
            self.envelopes.append((reply["envelope_id"], int(reply["amount_fen"])))
        elif reply.get("result") == "card":
            self.cards.append(reply["card_id"])


class GrabUser(GalaUser):
    """Taps several times a second (咻一咻) at its pace; wins are kept."""

    abstract = True

    @task
    def grab(self) -> None:
        if self.ready():
            self.tap()


class ShareUser(GalaUser):
    """Acts in bursts (pacing `burst`): gives a card to a friend or splits an envelope among friends.
    With nothing to share it grabs until it wins something, and every `params.refresh_every` empty
    actions looks at what friends have given it (GET /me: their cards and split envelopes, and friends
    who added it), which it shares on: sharing spreads, as on the night."""

    abstract = True

    def on_start(self) -> None:
        self.empty_actions = 0
        super().on_start()

    def refresh(self) -> None:
        reply = self.call("GET", "/me", "setup:me", headers=self.auth)
        if reply:
            self.cards = [c["card_id"] for c in reply.get("cards", [])]
            self.envelopes = [(e["envelope_id"], int(e["amount_fen"])) for e in reply.get("envelopes", [])]
            self.friends = [f for f in reply.get("friends", self.friends) if f != self.user_id] or self.friends

    @task
    def share(self) -> None:
        if not self.ready():
            return
        if not (self.cards or self.envelopes):
            self.empty_actions += 1
            if self.empty_actions % int(self.params.get("refresh_every", 3)) == 0:
                self.refresh()
                return
        if self.friends and self.cards:
            card = self.cards.pop()
            self.call("POST", "/share/card", "share:card", json={"card_id": card, "to": self.rng.choice(self.friends)},
                      headers=self.auth)
        elif self.friends and self.envelopes:
            envelope_id, amount_fen = self.envelopes.pop()
            n = max(1, min(int(self.params.get("split_max", 3)), amount_fen, len(self.friends)))
            to = self.rng.sample(self.friends, n)
            self.call("POST", "/share/split", "share:split", json={"envelope_id": envelope_id, "to": to},
                      headers=self.auth)
        else:
            self.tap()


class ChatUser(GalaUser):
    """Sends messages to friends and polls its inbox with a cursor (`params.send_ratio` of actions send)."""

    abstract = True

    def on_start(self) -> None:
        self.cursor = 0
        self.sent = 0
        super().on_start()

    @task
    def chat(self) -> None:
        if not self.ready():
            return
        if self.friends and self.rng.random() < float(self.params.get("send_ratio", 0.5)):
            self.sent += 1
            text = f"新年快乐 {self.sent} from {self.user_id}"
            self.call("POST", "/chat/send", "chat:send", json={"to": self.rng.choice(self.friends), "text": text},
                      headers=self.auth)
        else:
            limit = int(self.params.get("inbox_limit", 20))
            reply = self.call("GET", f"/chat/inbox?since={self.cursor}&limit={limit}", "chat:inbox", headers=self.auth)
            if reply and "cursor" in reply:
                self.cursor = reply["cursor"]
