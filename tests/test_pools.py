"""Where tasks run (melange_nb/pools.py): a local process pool gives what this process gives, in job
order, and a task's one-line error reaches the caller as the same error."""
import math

import pytest

from melange_nb.errors import InputError
from melange_nb.pools import run_tasks
from melange_nb.scale import check_address


def test_a_process_pool_gives_the_results_here_in_job_order():
    jobs = [(n,) for n in (7, 0, 12, 3, 5)]
    here = run_tasks(math.factorial, jobs)
    assert here == [5040, 1, 479001600, 6, 120]
    assert run_tasks(math.factorial, jobs, workers=2) == here


def test_a_failing_task_raises_its_own_one_line_error():
    with pytest.raises(InputError) as err:      # rebuilt in this process with its field (InputError.__reduce__)
        run_tasks(check_address, [("127.0.0.1:6379",), ("no port",)], workers=2)
    assert err.value.field == "--ray-address" and "\n" not in str(err.value)
    assert "expects HOST:PORT" in str(err.value)
