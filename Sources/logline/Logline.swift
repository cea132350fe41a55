import ArgumentParser

/// The `logline` command: the server and a client for every verb.
@main
struct Logline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logline",
        abstract: "Logline: an event-sourcing server with a durable LMDB log, spoken to over one TCP socket.",
        discussion: """
            Start a server with `logline serve`, then talk to it with the other subcommands, netcat or redis-cli.
            Client subcommands print the server's JSON replies; a failure is one line on stderr and exit code 1.
            """,
        subcommands: [
            Serve.self, Ping.self, Append.self, AppendMany.self, Read.self, ReadAll.self, Info.self, Submit.self,
            Get.self,
            Query.self, Views.self, Projections.self, Rebuild.self, Parked.self, Retry.self, Skip.self, Load.self,
            CheckCommand.self, ExportCommand.self, ImportCommand.self, BackupCommand.self,
        ]
    )
}
