#!/usr/bin/env node
import { runCli } from "./cli.js";
import { interruptSignals, trainerTakesInterrupts } from "../train/trainer.js";
import { removeTemporariesInFlight } from "../util/fs.js";

// An interrupt ends the command with one line, not silently. Exiting runs the exit hooks: the
// run directory's lock is released and child servers are stopped; finished batches are already
// on disk; the temporary files being written (exports, corpus databases, downloads) are
// removed, since exiting skips their writers' cleanup. A running trainer takes the signal
// itself (it checkpoints, and its error is reported).
for (const [signal, exitCode] of Object.entries(interruptSignals)) {
    process.on(signal, () => {
        if (trainerTakesInterrupts())
            return;
        removeTemporariesInFlight();
        process.stderr.write(`\nautoact: interrupted (${signal}); what finished is kept: run the same command again to continue a pipeline\n`);
        process.exit(exitCode);
    });
}

process.exitCode = await runCli(process.argv.slice(2));
