"""`python -m envctl` and the `envctl` script: the command line, loaded without the cyclic collector."""
import gc


def run() -> None:
    """Console-script entry point: import the CLI with the cyclic collector off, freeze what it loaded, run it.

    The imports make some hundred thousand objects that live as long as the process. The collector
    need not walk them while they load (dozens of passes), in each full pass after, or at exit:
    frozen, they are left out. Some 45 ms of every command (measured on a warm `up`). Here rather
    than in the CLI module, so that importing it (tests, the pytest plugin) changes no collector."""
    gc.disable()
    try:
        from envctl.shells import cli
    finally:
        gc.freeze()
        gc.enable()
    cli.run()


if __name__ == "__main__":
    run()
