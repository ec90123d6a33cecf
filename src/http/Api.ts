import { HttpApi, OpenApi } from "@effect/platform"
import { AdminApi } from "./AdminApi.js"
import { AuthApi } from "./AuthApi.js"
import { OpsApi } from "./OpsApi.js"
import { LedgerApi } from "./LedgerApi.js"
import { MerchantApi } from "./MerchantApi.js"
import { TraderApi } from "./TraderApi.js"

export class JivaPayApi extends HttpApi.make("jivapay")
  .add(OpsApi)
  .add(AuthApi)
  .add(AdminApi)
  .add(TraderApi)
  .add(MerchantApi)
  .add(LedgerApi)
  .annotate(OpenApi.Title, "JivaPay API")
  .annotate(OpenApi.Description, "P2P payment processing: merchants, traders, orders, balances.")
{}
