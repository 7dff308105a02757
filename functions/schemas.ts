import * as z from "zod";
import { CATCHUP_MODES, FIRE_OUTCOMES, OVERLAP_MODES } from "../shared/db/schedules.ts";
import { FAILURE_REASONS, RUN_STATES, TASK_STATES, WORKFLOW_STATES } from "../shared/model.ts";

/**
 * The API's schemas: requests are validated with them and `/openapi.json` is generated from them, so
 * the two cannot drift. Responses are described here too (tests parse real answers with them).
 */

const Timestamp = z.iso.datetime({ offset: true });

/**
 * Postgres text cannot hold U+0000, and no text field has a use for it: refused as invalid (422), never
 * a database error. (A workflow's source is checked by the DSL, which reports where the NUL is.)
 */
export const withoutNul = (text: string) => !text.includes("\0");
const NUL_MESSAGE = "must not contain the NUL character (U+0000)";
const text = () => z.string().refine(withoutNul, NUL_MESSAGE);
const InputName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an input name is a letter or _ then letters, digits, _");
export const TRIGGER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

const callbackFields = {
  callback_url: z
    .url({ protocol: /^https?$/, error: "callback_url must be an http or https URL" })
    .max(2048)
    .refine(withoutNul, NUL_MESSAGE)
    .optional()
    .meta({
      description:
        "POSTed the workflow's summary when it ends, signed with callback_secret; a host that is or resolves to a loopback, private, link-local or metadata address is refused (422 callback_refused) unless the operator allows it",
    }),
  callback_secret: text()
    .min(16)
    .max(256)
    .optional()
    .meta({ description: "HMAC-SHA256 key of the callback's X-DWOP-Signature; required with callback_url" }),
};

const PRIORITY_TEXT =
  "the priority of tasks without @priority, -100 to 100 (higher first among the owner's ready tasks)";
const priorityField = z.int().min(-100).max(100).optional().meta({ description: PRIORITY_TEXT });
/** A multipart field is text: "-5" is read as -5. */
const priorityFormField = z
  .string()
  .regex(/^-?\d{1,3}$/, "priority is a whole number from -100 to 100")
  .transform(Number)
  .pipe(z.int().min(-100).max(100))
  .optional()
  .meta({ description: PRIORITY_TEXT });

const bothOrNeither = (v: { callback_url?: string; callback_secret?: string }) =>
  (v.callback_url === undefined) === (v.callback_secret === undefined);
const bothOrNeitherError = {
  message: "callback_url and callback_secret go together",
  path: ["callback_secret"],
};

export const SubmitJson = z
  .strictObject({
    workflow: z.string().min(1).meta({ description: "the .workflow source" }),
    name: z
      .string()
      .regex(/^[\w.-]{1,100}$/)
      .optional()
      .meta({ description: "the workflow's name (default: workflow)" }),
    requirements: text().nullable().optional().meta({ description: "a requirements.txt" }),
    inputs: z
      .record(InputName, z.string())
      .optional()
      .meta({ description: "inputs.NAME values, read by tasks" }),
    priority: priorityField,
    ...callbackFields,
  })
  .refine(bothOrNeither, bothOrNeitherError);

/** The text fields of a multipart submit; `inputs.NAME` file fields come beside them. */
export const SubmitForm = z
  .object({
    workflow: z
      .string()
      .min(1)
      .meta({ description: "the .workflow file (its file name names the workflow)" }),
    requirements: text().optional().meta({ description: "a requirements.txt file" }),
    priority: priorityFormField,
    ...callbackFields,
  })
  .refine(bothOrNeither, bothOrNeitherError)
  .meta({
    description:
      "also inputs.NAME file fields (at most DWOP_MAX_INPUTS_PER_WORKFLOW), each read by a task as inputs.NAME",
  });

export const WorkflowListQuery = z.object({
  status: z.enum(WORKFLOW_STATES).optional(),
  schedule: z
    .string()
    .regex(TRIGGER_NAME, "a schedule name is letters, digits, _ and -, at most 63")
    .optional()
    .meta({ description: "only the workflows this schedule started" }),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.uuid().optional().meta({ description: "nextCursor of the previous page" }),
});

export const TaskListQuery = z.object({
  status: z
    .string()
    .transform((v) => v.split(",").map((x) => x.trim()))
    .pipe(z.array(z.enum(TASK_STATES)).min(1))
    .optional()
    .meta({ description: "only tasks in these states, separated by commas (failed,upstream_failed)" }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "a cursor is a task's name (the nextCursor of the previous page)")
    .optional()
    .meta({ description: "nextCursor of the previous page" }),
});

export const LogsQuery = z.object({
  attempt: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .meta({ description: "default: the task's latest attempt" }),
  offset: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .meta({ description: "the first byte to send (a follower's last X-Log-Size); default 0" }),
});

export const TriggerCreate = z.strictObject({
  name: z.string().regex(TRIGGER_NAME, "a trigger name is letters, digits, _ and -, at most 63"),
  workflow: z.string().min(1),
  requirements: text().nullable().optional(),
  secret: text().min(16).max(256).meta({ description: "HMAC-SHA256 key of the deliveries; never returned" }),
});

const scheduleFields = {
  cron: text()
    .min(1)
    .max(200)
    .meta({ description: "5 fields (minute hour day-of-month month day-of-week) or @hourly, @daily..." }),
  timezone: text()
    .min(1)
    .max(100)
    .meta({ description: "IANA time zone the expression is read in; default UTC" }),
  workflow: z.string().min(1).meta({ description: "the .workflow source each fire starts" }),
  requirements: text().nullable().meta({ description: "a requirements.txt" }),
  inputs: z
    .record(InputName, text())
    .meta({ description: "inputs.NAME values given to every workflow it starts" }),
  overlap: z.enum(OVERLAP_MODES).meta({
    description:
      "when a fire comes while a run it started has not ended: allow, skip (default) or cancel_previous",
  }),
  catchup: z.enum(CATCHUP_MODES).meta({
    description:
      "fire times missed by over a minute (downtime): none (default) or latest (fire the latest once)",
  }),
};

export const ScheduleCreate = z.strictObject({
  name: z.string().regex(TRIGGER_NAME, "a schedule name is letters, digits, _ and -, at most 63"),
  ...scheduleFields,
  timezone: scheduleFields.timezone.optional(),
  requirements: scheduleFields.requirements.optional(),
  inputs: scheduleFields.inputs.optional(),
  overlap: scheduleFields.overlap.optional(),
  catchup: scheduleFields.catchup.optional(),
});

export const ScheduleUpdate = z
  .strictObject({
    paused: z
      .boolean()
      .optional()
      .meta({ description: "true pauses; false resumes from the next fire time" }),
    cron: scheduleFields.cron.optional(),
    timezone: scheduleFields.timezone.optional(),
    workflow: scheduleFields.workflow.optional(),
    requirements: scheduleFields.requirements.optional(),
    inputs: scheduleFields.inputs.optional(),
    overlap: scheduleFields.overlap.optional(),
    catchup: scheduleFields.catchup.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, {
    message: "give at least one field to change",
    // Not about a body whose fields were refused already (`{"name": "x"}`: an unknown field, not none).
    when: (payload) => payload.issues.length === 0,
  });

export const ApiKeyCreate = z.strictObject({ name: text().min(1).max(100) });

export const ErrorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown() }),
});

export const Health = z.object({ status: z.string() });

export const RunSummary = z.object({
  id: z.string(),
  attempt: z.int(),
  status: z.enum(RUN_STATES),
  failureReason: z.enum(FAILURE_REASONS).nullable(),
  exitCode: z.int().nullable(),
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
});

export const Task = z.object({
  name: z.string(),
  status: z.enum(TASK_STATES),
  attempt: z.int().meta({ description: "the attempt now queued, running or last run; 0 before the first" }),
  maxRetries: z.int(),
  error: z.string().nullable(),
  params: z.array(z.object({ name: z.string(), upstream: z.string() })),
  pool: z.string().nullable(),
  priority: z.int(),
  waiting: z.string().nullable().meta({
    description: "why a queued task has not started, e.g. waiting for pool gpu (2/2 slots busy)",
  }),
  queuedAt: Timestamp.nullable(),
  dispatchedAt: Timestamp.nullable(),
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
  runs: z.array(RunSummary),
});

export const Workflow = z.object({
  id: z.uuid(),
  name: z.string(),
  schedule: z.string().nullable().meta({ description: "the schedule that started it, if one did" }),
  status: z.enum(WORKFLOW_STATES),
  taskCount: z.int(),
  createdAt: Timestamp,
  startedAt: Timestamp.nullable(),
  finishedAt: Timestamp.nullable(),
});

export const WorkflowDetail = Workflow.extend({
  inputs: z.array(z.string()),
  hasRequirements: z.boolean(),
  tasks: z.array(Task),
});

export const WorkflowList = z.object({ workflows: z.array(Workflow), nextCursor: z.uuid().nullable() });

export const TaskList = z.object({
  tasks: z.array(Task),
  nextCursor: z.string().nullable().meta({ description: "the last task's name, when more follow" }),
});

export const Run = RunSummary.extend({
  workflowId: z.uuid(),
  taskName: z.string(),
  executor: z.string().nullable(),
  jobName: z.string().nullable(),
  dispatcherId: z.string().nullable(),
  error: z.string().nullable(),
  logTail: z.string().nullable(),
  createdAt: Timestamp,
  dispatchedAt: Timestamp.nullable(),
});

export const WorkflowEvent = z.object({
  id: z.string(),
  kind: z.string().meta({ description: "workflow, task or callback" }),
  task: z.string().nullable(),
  status: z.string().nullable(),
  attempt: z.int().nullable(),
  data: z.unknown(),
  at: Timestamp,
});

export const Trigger = z.object({
  id: z.uuid().meta({ description: "random; deliveries are signed for it" }),
  name: z.string().meta({ description: "unique among the caller's triggers" }),
  url: z.string().meta({ description: "the path deliveries are POSTed to: /hooks/{id}" }),
  workflow: z.string(),
  requirements: z.string().nullable(),
  createdAt: Timestamp,
});

export const TriggerList = z.object({ triggers: z.array(Trigger) });

export const ScheduledRun = z.object({
  id: z.uuid(),
  status: z.enum(WORKFLOW_STATES),
  createdAt: Timestamp,
  finishedAt: Timestamp.nullable(),
});

export const ScheduleFire = z.object({
  fireAt: Timestamp.meta({ description: "the fire time; for missed, the first of the times it covers" }),
  outcome: z.enum(FIRE_OUTCOMES).meta({
    description:
      "started (its workflow was made), failed (it could not be submitted), skipped_overlap (overlap skip: a run it started had not ended) or missed (passed over by catchup after downtime; never fired)",
  }),
  workflowId: z.uuid().nullable().meta({ description: "the workflow it started (outcome started)" }),
  reason: z.string().nullable().meta({ description: "why it failed, was skipped or was missed" }),
  missedThrough: Timestamp.nullable().meta({ description: "missed: the last fire time it covers" }),
  missedCount: z
    .int()
    .nullable()
    .meta({ description: "missed: how many fire times it covers; null when over 1,000" }),
  recordedAt: Timestamp,
});

export const Schedule = z.object({
  name: z.string().meta({ description: "unique among the caller's schedules" }),
  cron: z.string(),
  timezone: z.string(),
  workflow: z.string(),
  requirements: z.string().nullable(),
  inputs: z.record(z.string(), z.string()),
  overlap: z.enum(OVERLAP_MODES),
  catchup: z.enum(CATCHUP_MODES),
  paused: z.boolean(),
  nextFireAt: Timestamp.nullable().meta({ description: "when it fires next; null while paused" }),
  lastRuns: z.array(ScheduledRun).meta({ description: "the last workflows it started, newest first" }),
  lastFires: z
    .array(ScheduleFire)
    .meta({ description: "its last fire records (started, failed, skipped, missed), newest first" }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const ScheduleList = z.object({ schedules: z.array(Schedule) });

export const HookAccepted = z.object({ workflowId: z.uuid() });

export const ApiKey = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string().meta({ description: "the key's first characters, to tell keys apart" }),
  createdAt: Timestamp,
  revokedAt: Timestamp.nullable(),
  maxRunning: z.int().nullable().meta({ description: "the operator's cap on the owner's running tasks" }),
});

export const ApiKeyCreated = ApiKey.extend({ key: z.string().meta({ description: "shown this once" }) });

export const ApiKeyList = z.object({ keys: z.array(ApiKey) });

export const PoolSet = z.strictObject({
  slots: z
    .int()
    .min(0)
    .max(10_000)
    .meta({ description: "attempts of the pool's tasks starting or running at once" }),
});

export const Pool = z.object({
  name: z.string(),
  slots: z.int(),
  running: z.int().meta({ description: "slots held by a run that is starting or running" }),
  waiting: z.int().meta({ description: "tasks of the pool queued for a slot" }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const PoolList = z.object({ pools: z.array(Pool) });

export const ApiKeyLimitSet = z.strictObject({
  maxRunning: z
    .int()
    .min(0)
    .max(100_000)
    .nullable()
    .meta({ description: "most tasks of the key's owner running at once; null: DWOP_OWNER_MAX_RUNNING" }),
});

export const ApiKeyLimit = ApiKeyLimitSet.extend({ id: z.uuid() });
