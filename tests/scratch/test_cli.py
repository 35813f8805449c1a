from tests.helpers import run_cli


def test_scratch_example_on_the_cli():
    proc = run_cli("scratch-example")
    assert proc.returncode == 0
    assert "W2         = W2 - lr*dW2 = 0.8 - 0.1*(-0.2789) = 0.8279" in proc.stdout


def test_scratch_demo_on_the_cli():
    proc = run_cli("scratch-demo", "symmetry")
    assert proc.returncode == 0 and proc.stdout.strip()
