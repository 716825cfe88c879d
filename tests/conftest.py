import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Tests that start Python subprocesses (each imports TensorFlow) or train for many steps. They run
# first, so that `pytest -n 2` spreads them over both workers instead of ending on one of them.
SLOW_FIRST = ("test_benchmarks_smoke.py", "test_distributed.py", "test_examples.py",
              "test_readme.py", "test_console.py", "test_keras3_pitfalls.py",
              "test_optional_dependencies.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order within each group is kept
