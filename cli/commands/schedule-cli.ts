import { Option, type Command } from "commander";
import type { Config } from "../../shared/config.ts";
import type { ScheduleAddOptions } from "./schedule.ts";

type Flags = { json?: boolean };
type Act = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;

/**
 * Registers `dwop schedule add|list|show|pause|resume|rm` on the program. The commands' module
 * (schedule.ts) is loaded when one runs; `config` is read then too.
 */
export function scheduleCommands(program: Command, config: () => Config | Promise<Config>, act: Act): void {
  const load = () => import("./schedule.ts");
  const json = "print JSON on stdout";
  const schedule = program.command("schedule").description("start a workflow on a cron schedule");
  schedule
    .command("add")
    .description("create a schedule on DWOP_URL: FILE's workflow starts at every time --cron names")
    .argument("<name>", "the schedule's name (letters, digits, _ and -)")
    .argument("<file>", "the .workflow file")
    .requiredOption("-c, --cron <expr>", 'a 5-field cron expression, such as "0 2 * * *", or @daily')
    .option("--tz <zone>", "the IANA time zone the expression is read in (default UTC)")
    .option("-r, --requirements <file>", "requirements.txt installed before each task")
    .option("-i, --input <name=file...>", "a workflow input (text), read by tasks as inputs.NAME")
    .addOption(
      new Option("--overlap <mode>", "when the last run has not ended (default skip)").choices([
        "allow",
        "skip",
        "cancel_previous",
      ]),
    )
    .addOption(
      new Option("--catchup <mode>", "times missed while down (default none)").choices(["none", "latest"]),
    )
    .option("--json", json)
    .action(
      act(async (name: string, file: string, opts: ScheduleAddOptions) =>
        (await load()).scheduleAddCommand(await config(), name, file, opts),
      ),
    );
  schedule
    .command("list")
    .description("your schedules, with the next fire time and the last run of each")
    .option("--json", json)
    .action(act(async (opts: Flags) => (await load()).scheduleListCommand(await config(), opts)));
  schedule
    .command("show")
    .description(
      "one schedule, with its last fires: the workflow each started, or why it was skipped or missed",
    )
    .argument("<name>", "the schedule's name")
    .option("--json", json)
    .action(
      act(async (name: string, opts: Flags) =>
        (await load()).scheduleShowCommand(await config(), name, opts),
      ),
    );
  for (const [verb, paused] of [
    ["pause", true],
    ["resume", false],
  ] as const) {
    schedule
      .command(verb)
      .description(paused ? "stop a schedule firing" : "fire again, from the next time after now")
      .argument("<name>", "the schedule's name")
      .option("--json", json)
      .action(
        act(async (name: string, opts: Flags) =>
          (await load()).schedulePauseCommand(await config(), name, paused, opts),
        ),
      );
  }
  schedule
    .command("rm")
    .description("delete a schedule (the workflows it started stay)")
    .argument("<name>", "the schedule's name")
    .action(act(async (name: string) => (await load()).scheduleRemoveCommand(await config(), name)));
}
