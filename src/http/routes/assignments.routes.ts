import type { AppContext } from '../../usecases/context.js';
import type { TypedApp } from '../typed-app.js';

export function assignmentRoutes(_app: TypedApp, _ctx: AppContext) {}
