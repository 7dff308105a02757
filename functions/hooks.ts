import type { Hono } from "hono";
import * as z from "zod";
import { checkSignature, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER } from "../shared/signature.ts";
import { submitWorkflow } from "../shared/submit.ts";
import { needStorage, UUID } from "./body.ts";
import type { ApiDeps, ApiEnv } from "./context.ts";
import { ApiError, notFound } from "./errors.ts";
import type { RouteDoc } from "./openapi.ts";
import { HookAccepted } from "./schemas.ts";
import { PAYLOAD_INPUT } from "./triggers.ts";

/**
 * `POST /hooks/:id`: a webhook delivery to the trigger with that (random) id. No bearer token; instead an
 * HMAC-SHA256 signature of `<timestamp>.<trigger id>.<raw body>` with the trigger's secret, a timestamp
 * within five minutes, and a delivery id never seen before. The body becomes `inputs.payload` of a new
 * workflow of the trigger's owner, and the answer is 202 as soon as the workflow is recorded (it runs
 * after).
 */
export function hookRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.post("/hooks/:id", async (c) => {
    const id = c.req.param("id").toLowerCase();
    const trigger = UUID.test(id) ? await deps.api.triggerForDelivery(id) : null;
    if (!trigger) throw notFound("trigger");
    const body = new Uint8Array(await c.req.arrayBuffer());
    const headers = { signature: c.req.header(SIGNATURE_HEADER), timestamp: c.req.header(TIMESTAMP_HEADER) };
    const refusal = await checkSignature(trigger.secret, headers, body, deps.now(), trigger.id);
    if (refusal) throw new ApiError(401, "invalid_signature", refusal);
    const delivery = c.req.header(DELIVERY_HEADER);
    if (!delivery || !/^[\x21-\x7e]{1,200}$/.test(delivery)) {
      throw new ApiError(400, "bad_request", `${DELIVERY_HEADER} must be 1 to 200 visible ASCII characters`);
    }

    const recorded = await recordDelivery(deps, trigger.id, delivery, headers.signature!);
    if (!recorded.workflowExists) {
      const submitted = await submitWorkflow(
        {
          store: deps.store,
          storage: needStorage(deps.storage),
          logger: deps.logger,
          uploadSlots: deps.uploadSlots,
        },
        {
          source: trigger.source,
          file: `${trigger.name}.workflow`,
          requirements: trigger.requirements,
          inputs: { [PAYLOAD_INPUT]: body },
          owner: trigger.owner,
          id: recorded.workflowId,
          retryBackoffMs: deps.settings.retryBackoffMs,
          maxInfraRetries: deps.settings.maxInfraRetries,
          limits: deps.settings.submitLimits,
        },
      );
      if (submitted.created) return c.json({ workflowId: submitted.id }, 202);
    }
    // A replay, or the same delivery arriving twice at once: the other request started the workflow.
    const details = { workflowId: recorded.workflowId };
    const what =
      recorded.seenAs === "signature"
        ? "this signed request (its timestamp and body) was already received"
        : `delivery ${delivery} was already received`;
    throw new ApiError(409, "replayed_delivery", what, details);
  });
}

/**
 * Records a delivery under its id and under its signature. The delivery id is not signed, so a captured
 * request replayed within the timestamp's five minutes with a new X-DWOP-Delivery would otherwise start
 * the workflow again; the signature (of the timestamp and body) is the same for the same signed request.
 * Whichever key was seen first decides the workflow, so a retry of a request that died half-way (same
 * id, or same signed bytes) starts that one workflow, once. The signature key has a space, which no
 * delivery id can hold.
 */
async function recordDelivery(
  deps: ApiDeps,
  triggerId: string,
  delivery: string,
  signature: string,
): Promise<{ workflowId: string; workflowExists: boolean; seenAs: "signature" | "delivery" }> {
  const signed = await deps.api.recordHookDelivery(
    triggerId,
    `signature ${signature.toLowerCase()}`,
    crypto.randomUUID(),
  );
  // A replay of a request that started its workflow: refused without recording anything more.
  if (signed.workflowExists) return { ...signed, seenAs: "signature" };
  const byId = await deps.api.recordHookDelivery(triggerId, delivery, signed.workflowId);
  return { ...(byId.workflowId === signed.workflowId ? signed : byId), seenAs: "delivery" };
}

export const hookDocs: RouteDoc[] = [
  {
    method: "post",
    path: "/hooks/:id",
    summary: "Deliver a signed webhook: starts the trigger's workflow with the body as inputs.payload",
    auth: "signed",
    headers: [
      {
        name: SIGNATURE_HEADER,
        required: true,
        description:
          "sha256=<hex HMAC-SHA256 of `<timestamp>.<trigger id>.<raw body>` with the trigger's secret>",
      },
      {
        name: TIMESTAMP_HEADER,
        required: true,
        description: "unix seconds; refused beyond 5 minutes either way",
      },
      { name: DELIVERY_HEADER, required: true, description: "unique per delivery; a replayed id is refused" },
    ],
    body: [
      {
        contentType: "*/*",
        schema: z.unknown().meta({ description: "any bytes: signed as sent, then inputs.payload" }),
      },
    ],
    responses: { 202: { description: "the workflow was started", schema: HookAccepted } },
    errors: [400, 401, 404, 409, 413, 422, 429],
  },
];
