import type { Argv, CommandModule } from "yargs";

/**
 * A command made of subcommands (`autoact bench infer`, `autoact model synth`); given alone, it
 * names them in one line instead of yargs' "Not enough non-option arguments".
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function commandGroup(name: string, describe: string, subcommands: CommandModule<any, any>[]): CommandModule {
    const names = subcommands.map((c) => String(c.command).split(" ")[0]);
    return {
        command: name,
        describe,
        builder: (yargs: Argv) => subcommands.reduce((y, c) => y.command(c), yargs)
            .demandCommand(1, `Name a ${name} command: ${names.join(", ")} (autoact ${name} --help)`),
        handler: () => undefined
    };
}
