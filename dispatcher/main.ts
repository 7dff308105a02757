// The dispatcher as its own process (the Kubernetes Deployment, or a second dispatcher beside `dwop dev`).
import { runDispatcher } from "./process.ts";

await runDispatcher();
