import OneWindowCLI

await OneWindowCommand.runFromCommandLine()
