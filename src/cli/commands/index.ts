import type { CommandModule } from "yargs";

// Every CLI command, in the order `autoact --help` lists them. One file per command;
// each is a thin adapter over one library function.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
];
