from trainwise.cli import run

run()
