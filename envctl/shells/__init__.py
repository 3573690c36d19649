"""The three ways people reach envctl: the `envctl` command, `envctl ci`, the pytest plugin."""
