"""What keeps a headless run of gala's locustfile well-behaved inside Locust: short garbage-collection
pauses, and SIGTERM during a shape run turned into a clean stop. Runs inside Locust's processes."""

from __future__ import annotations

import gc
import logging
import signal
import time

import gevent
import greenlet

GC_FREEZE_AGAIN_S = 3.0  # after spawning completes: the last users' on_start and first request are done


def short_gc_pauses(environment) -> None:
    """Keep Python's full garbage collections from stopping the load for tens of milliseconds.

    A full collection walks every tracked object while the gevent loop waits: measured with 2,000 users,
    ~190k objects (half of them pandas, numpy and pydantic, imported for the stats) took 80-135 ms, about
    every 10 s, which was most of the p99 the generator added. `gc.freeze()` moves objects out of the
    collector's reach: the imported modules now, and the running users once spawning completes, so a
    full collection only walks what changed since (a few ms). Frozen objects are still freed by reference
    counting; only cycles are kept, and stopped users are cycles (user <-> client), so when any user frozen
    last time has stopped, one full collection (at that moment, not at random) reclaims them.
    """
    gc.collect()  # do not freeze the imports' garbage
    gc.freeze()
    frozen_users: list = []  # the user greenlets alive at the last freeze

    def freeze() -> None:
        nonlocal frozen_users
        if any(g.dead for g in frozen_users):
            return  # keep track of the stopped ones: the next spawning_complete reclaims them
        gc.freeze()
        frozen_users = list(getattr(environment.runner, "user_greenlets", ()))

    def on_spawning_complete(**_kw) -> None:
        nonlocal frozen_users
        if any(g.dead for g in frozen_users):
            frozen_users = []  # (the list must not keep them alive)
            t0 = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            logging.getLogger("gala").debug("gc: reclaimed stopped users in %.0f ms", (time.perf_counter() - t0) * 1000)
        freeze()
        # The last users spawned have not run yet: freeze again once they have started and connected.
        gevent.spawn_later(GC_FREEZE_AGAIN_S, freeze)

    environment.events.spawning_complete.add_listener(on_spawning_complete)


def sigterm_during_shape(environment) -> None:
    """Make SIGTERM end a headless shape run cleanly, as Ctrl-C does.

    Locust (2.47) blocks on the shape greenlet before it installs its own SIGTERM handler, so a SIGTERM
    during a headless shape run would kill the process with no stop, no events and no files. Until the
    run stops, SIGTERM raises KeyboardInterrupt in the main greenlet: Locust then stops the shape, fires
    test_stop/quitting/quit and writes its reports, as for Ctrl-C.
    """
    main = greenlet.getcurrent()
    hub = gevent.get_hub()

    def on_sigterm() -> None:
        logging.getLogger("gala").info("Got SIGTERM during the shape: stopping the run")
        hub.loop.run_callback(main.throw, KeyboardInterrupt)

    handler = gevent.signal_handler(signal.SIGTERM, on_sigterm)
    # Once the shape has stopped, Locust's own handler is in place: ours would interrupt its shutdown.
    environment.events.test_stop.add_listener(lambda **_kw: handler.cancel())
