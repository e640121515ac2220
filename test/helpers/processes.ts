import fs from "node:fs";

export interface ProcessInfo {
    pid: number;
    ppid: number;
    /** The executable's name (at most 15 characters). */
    comm: string;
    /** The whole command line, arguments separated by spaces. */
    cmdline: string;
}

/** The machine's processes, from /proc (Linux); none elsewhere. For tests that look for what a command left running. */
export function listProcesses(): ProcessInfo[] {
    if (!fs.existsSync("/proc/self/stat"))
        return [];
    return fs.readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).flatMap((pid) => {
        try {
            // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis
            const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
            const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
            return [{ pid: Number(pid), ppid, comm, cmdline }];
        } catch {
            return []; // gone meanwhile
        }
    });
}
