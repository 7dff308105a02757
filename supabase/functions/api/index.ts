// Supabase Edge Function `api` (any name will do): the whole HTTP API, at
// https://<project>.supabase.co/functions/v1/<name>/...
// `npm run build:functions` bundles this file into build/index.js, which is what gets deployed.
import { dwopApp, mounted, serve } from "../_shared/dwop.ts";

serve(mounted(dwopApp("api")).fetch);
