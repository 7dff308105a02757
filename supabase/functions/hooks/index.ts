// Supabase Edge Function `hooks` (any name will do): only the signed webhooks, at
// .../functions/v1/<name>/<trigger id>, which the app serves as POST /hooks/<trigger id>. Every path
// lands under /hooks, so nothing else of the API is reachable here.
import { dwopApp, mounted, serve } from "../_shared/dwop.ts";

serve(mounted(dwopApp("hooks"), "/hooks").fetch);
