import type { AppContext } from '../../usecases/context.js';
import type { TypedApp } from '../typed-app.js';

export function subscriptionRoutes(_app: TypedApp, _ctx: AppContext) {}
